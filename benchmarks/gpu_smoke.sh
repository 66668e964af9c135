#!/usr/bin/env bash
# GPU smoke test, under 5 minutes on one GPU: every CUDA path unicomp has, timed.
#
#     benchmarks/gpu_smoke.sh [WORK_DIR]
#
# PYTHON chooses the interpreter; DEVICE=cpu rehearses the script on a machine without a
# GPU (everything but NCCL).
#
# 1. trains an image model 200 steps on CUDA in bf16 with loader workers, under torchrun
#    with two ranks (NCCL) where there are two GPUs, one otherwise;
# 2. resumes that run on the CPU for 10 steps, then on CUDA again for 10 (portable states);
# 3. compresses and decompresses the bundled photo and speech clip on CUDA, with the
#    trained model and with the bundled default models;
# 4. decodes on CUDA beside the CPU contract's kernels (benchmarks/kernel_settings.py):
#    how far GPU decoding lands from the CPU's samples, and how fast it is.
# Each step prints its wall time; the script stops at the first failure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
WORK=${1:-$(mktemp -d)}
SAMPLES="$ROOT/examples/samples"
mkdir -p "$WORK"
cd "$ROOT"

step() {
    local name=$1
    shift
    local started=${EPOCHREALTIME/[.,]/}
    echo "== $name"
    "$@"
    local micros=$((${EPOCHREALTIME/[.,]/} - started))
    printf '== %s: %d.%d s\n\n' "$name" $((micros / 1000000)) $((micros / 100000 % 10))
}

unicomp() { "$PYTHON" -m unicomp "$@"; }

config() {  # config FILE HARD_STEPS: 100 float, 50 soft, then HARD_STEPS hard steps
    cat >"$1" <<EOF
[train]
float_steps = 100
soft_steps = 50
hard_steps = $2
batch_size = 8
checkpoint_every = 50
log_every = 10
EOF
}

"$PYTHON" - <<'EOF'
import torch
gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPUs: {gpus}")
EOF
GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
RANKS=$((GPUS >= 2 ? 2 : 1))

# Training photos: the bundled photo and three views of it.
"$PYTHON" - "$SAMPLES/fruits.jpg" "$WORK/photos" <<'EOF'
import sys
from pathlib import Path
from PIL import Image, ImageOps
photo, folder = Image.open(sys.argv[1]).convert("RGB"), Path(sys.argv[2])
folder.mkdir(exist_ok=True)
photo.save(folder / "fruits.png")
ImageOps.mirror(photo).save(folder / "mirrored.png")
ImageOps.grayscale(photo).convert("RGB").save(folder / "grey.png")
photo.resize((photo.width // 2, photo.height // 2)).save(folder / "half.png")
EOF
config "$WORK/200.toml" 50
config "$WORK/210.toml" 60
config "$WORK/220.toml" 70
TRAIN=(train --modality image --data "$WORK/photos" --out "$WORK/run" --name smoke --quiet)

step "train 200 steps, $DEVICE, bf16, $RANKS rank(s)" \
    "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$RANKS" -m unicomp \
    "${TRAIN[@]}" --config "$WORK/200.toml" --device "$DEVICE" --precision bf16 --loader-workers 2
step "resume on cpu to step 210" unicomp "${TRAIN[@]}" --config "$WORK/210.toml" --resume --device cpu
step "resume on $DEVICE to step 220" unicomp "${TRAIN[@]}" --config "$WORK/220.toml" --resume --device "$DEVICE"
tail -n 3 "$WORK/run/log.jsonl"

step "compress photo, trained model, $DEVICE" unicomp compress "$SAMPLES/fruits.jpg" \
    -o "$WORK/smoke.ucz" --model "$WORK/run/smoke.json" --device "$DEVICE" --metrics --force
step "decompress it, $DEVICE" unicomp decompress "$WORK/smoke.ucz" -o "$WORK/smoke.png" \
    --model "$WORK/run/smoke.json" --device "$DEVICE" --force
step "compress photo, image-v1, $DEVICE" unicomp compress "$SAMPLES/fruits.jpg" \
    -o "$WORK/fruits.ucz" --device "$DEVICE" --metrics --force
step "compress photo, image-v1, cpu" unicomp compress "$SAMPLES/fruits.jpg" \
    -o "$WORK/fruits-cpu.ucz" --device cpu --metrics --force
step "decompress photo, $DEVICE" unicomp decompress "$WORK/fruits.ucz" -o "$WORK/fruits.png" \
    --device "$DEVICE" --force
step "compress speech, speech-v1, $DEVICE" unicomp compress "$SAMPLES/prompts.flac" \
    -o "$WORK/prompts.ucz" --device "$DEVICE" --force
step "compress speech, speech-v1, cpu" unicomp compress "$SAMPLES/prompts.flac" \
    -o "$WORK/prompts-cpu.ucz" --device cpu --force
step "decompress speech, $DEVICE" unicomp decompress "$WORK/prompts.ucz" -o "$WORK/prompts.wav" \
    --device "$DEVICE" --force
step "decode on $DEVICE against the cpu contract" \
    "$PYTHON" benchmarks/kernel_settings.py --threads 1 4 --device "$DEVICE"
