"""Train an image model whose distortion weighs (1 - MS-SSIM) otherwise than the
released ones do (an experiment; modalities/image/modality.py, MS_SSIM_WEIGHT 0.05).

    nohup .venv/bin/python benchmarks/train_image_weighted.py 0.15 \
        --config benchmarks/image-v3-msssim.toml --start-from unicomp/weights/image-v2.json \
        >> ~/.cache/unicomp/runs/image-v3-msssim.log 2>&1 &

The first argument is the weight of (1 - MS-SSIM) beside the MSE of [0, 1] pixels; the
rest is train_image.py's command line. Issue 17's goals score MS-SSIM against WebP and
JPEG 2000 at each rate and in BD-rate; this measures what a model trained to favour it
gives up in PSNR and chroma. Results: benchmarks/README.md.
"""

import dataclasses
import sys

from unicomp.modalities.image.modality import ImageModality
from unicomp.release.image import RECIPE
from unicomp.release.recipe import main

if __name__ == "__main__":
    weight = float(sys.argv.pop(1))
    sys.exit(main(dataclasses.replace(RECIPE, modality=ImageModality(ms_ssim_weight=weight))))
