"""Train a speech model whose training distortion also weighs the band envelopes, as
the latent search does (an experiment; the released models train on the L1 alone).

    nohup .venv/bin/python benchmarks/train_speech_envelope.py 0.25 \
        --config benchmarks/speech-envelope.toml --start-from unicomp/weights/speech-v2.json \
        >> ~/.cache/unicomp/runs/speech-envelope.log 2>&1 &
    .venv/bin/python benchmarks/train_speech_envelope.py 0 \
        --config benchmarks/speech-envelope.toml --export --weights /tmp/speech-envelope

The first argument is the weight of the envelopes' decorrelation (modalities/speech/
intelligibility.py) beside the audible-range L1, over STOI's bands of every mel band;
the rest is train_speech.py's command line. Export with 0: the search and the
calibration then minimise what the bundled codec's search does (the search adds its
own envelope term). Results: benchmarks/README.md, "Speech: training on the band
envelopes too".
"""

import dataclasses
import sys

import torch

from unicomp.modalities.speech.modality import SAMPLE_RATE, SpeechModality
from unicomp.release.recipe import main
from unicomp.release.speech import RECIPE


class EnvelopeTrained(SpeechModality):
    """Speech whose :meth:`distortion` is what the search minimises for a wideband file
    (every mel band) with envelope weight ``weight``."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self._trained = SpeechModality(envelope_weight=weight).search_distortion(
            {"sr": SAMPLE_RATE}
        )

    def distortion(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self._trained(x_hat, x)


if __name__ == "__main__":
    weight = float(sys.argv.pop(1))
    sys.exit(main(dataclasses.replace(RECIPE, modality=EnvelopeTrained(weight))))
