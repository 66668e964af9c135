"""Train the default speech model (speech-v1) on the corpus's train split, resumably.

    nohup .venv/bin/python benchmarks/train_speech.py --resume \
        >> ~/.cache/unicomp/runs/speech-v1.log 2>&1 &
    .venv/bin/python benchmarks/train_speech.py --export

One torch thread: the machine is shared, and on 2 busy cores more threads made small
convolutions slower, not faster. The recipe (8 kHz copies, 10 s calibration clips) is
unicomp/release/speech.py; the command line, shared with train_image.py, is
unicomp/release/recipe.py.
"""

import sys

from unicomp.release.recipe import main
from unicomp.release.speech import RECIPE

if __name__ == "__main__":
    sys.exit(main(RECIPE))
