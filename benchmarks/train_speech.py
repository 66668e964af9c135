"""Train a speech model on the corpus's train split, resumably, and release it.

    # speech-v2, the default: speech-v1 fine-tuned (67 minutes on one core)
    nohup .venv/bin/python benchmarks/train_speech.py --config benchmarks/speech-v2.toml \
        --start-from unicomp/weights/speech-v1.json --resume \
        >> ~/.cache/unicomp/runs/speech-v2.log 2>&1 &
    .venv/bin/python benchmarks/train_speech.py --config benchmarks/speech-v2.toml --export

Without ``--config``, the speech defaults train from scratch as speech-v1 was (20000
steps).

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
