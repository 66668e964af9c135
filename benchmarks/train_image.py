"""Train the default image model (image-v2) on the corpus's train split, resumably.

    nohup .venv/bin/python benchmarks/train_image.py --resume \
        >> ~/.cache/unicomp/runs/image-v2.log 2>&1 &
    .venv/bin/python benchmarks/train_image.py --export   # any time after the soft phase

One torch thread: the machine is shared with other training runs. The recipe (which
images, calibration at typical photo size) is unicomp/release/image.py; the command
line, shared with train_speech.py, is unicomp/release/recipe.py.
"""

import sys

from unicomp.release.image import RECIPE
from unicomp.release.recipe import main

if __name__ == "__main__":
    sys.exit(main(RECIPE))
