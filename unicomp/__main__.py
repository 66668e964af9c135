"""``python -m unicomp`` is the ``unicomp`` command."""

from unicomp.cli import main

main()
