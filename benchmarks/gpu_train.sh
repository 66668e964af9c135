#!/usr/bin/env bash
# Train a recipe (image or speech) on a lent GPU within one device call, resumably across
# calls, sessions and machines.
#
# Here, in the repository root of a session that has a device:
#     benchmarks/gpu_train.sh --prepare MODALITY [RUN_DIR]
# slims what travels (benchmarks/device_tree.sh: the bundled weights stay here) and fills
# .gpu/ (ignored by git): the run folder RUN_DIR to resume if it exists, wheels of the
# packages the device lacks (Python 3.12), and the train split: the image split whole
# (~31 MB), the speech split's largest share of every folder that fits the rest of the
# 64 MiB a call carries, in lossless FLAC (benchmarks/speech_pack.py): 32 % of its files
# with no run to resume, but a speech run's state alone takes 52 MB, so resuming one on
# a GPU leaves room for only ~5 % (better: resume it on the CPU, or start afresh).
# Then one call of the device tool, from the repository root:
#     run(command="benchmarks/gpu_train.sh MODALITY CONFIG SECONDS", carry=[".gpu"],
#         timeout_s=SECONDS + 150)
# trains the recipe (benchmarks/train_MODALITY.py) with CONFIG's overrides on CUDA in
# bf16 with 8 loader workers, resuming the carried run, for SECONDS, then leaves the run
# folder in $OUT, the large files split (a call returns at most 16 MiB per file). Back
# here:
#     benchmarks/gpu_train.sh --collect FILES_AT RUN_DIR
# joins the parts into RUN_DIR and tracks the weights again, from which
# train_MODALITY.py --resume continues on the CPU or the next device, and --export
# calibrates it (on the whole train split here). The trainer stops itself after SECONDS
# with a checkpoint (--seconds), so a lease's steps are all kept.
#
# DEVICE=cpu rehearses the training part on a machine without a GPU (fp32, no workers).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
GPU_DIR="$ROOT/.gpu"
PART_BYTES=15000000
#: What one device call may carry, less a margin for the files that change meanwhile.
CARRY_BYTES=$((63 * 1048576))
#: What unicomp imports that the device lacks (KINDS.md lists what it has); of compressai
#: only its rANS extension is loaded, which needs none of its dependencies.
WHEELS=(compressai==1.2.8 pytorch-msssim==1.0.0 soundfile==0.13.1 soxr==0.5.0.post1)

split_large() {  # split_large DIR: files over PART_BYTES become NAME.partNN
    local file
    for file in "$1"/*; do
        [ -e "$file" ] || continue
        if [ "$(stat -c %s "$file")" -gt "$PART_BYTES" ]; then
            split -b "$PART_BYTES" -d "$file" "$file.part"
            rm "$file"
        fi
    done
}

join_parts() {  # join_parts DIR: NAME.partNN files back into NAME
    local first
    for first in "$1"/*.part00; do
        [ -e "$first" ] || continue
        cat "${first%.part00}".part?? >"${first%.part00}"
        rm "${first%.part00}".part??
    done
}

case "${1:-}" in
--prepare)
    modality=${2:?usage: $0 --prepare MODALITY [RUN_DIR]}
    run=${3:-}
    "$ROOT/benchmarks/device_tree.sh" slim >/dev/null
    rm -rf "$GPU_DIR"
    mkdir -p "$GPU_DIR/wheels" "$GPU_DIR/run"
    if [ -n "$run" ] && [ -d "$run" ]; then
        # What resuming reads; the model files are written afresh at the next checkpoint.
        for file in "$run"/state.json "$run"/state.safetensors "$run"/log.jsonl "$run"/gpu.log; do
            [ ! -e "$file" ] || cp "$file" "$GPU_DIR/run/"
        done
    fi
    "$ROOT/.venv/bin/python" -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp --platform manylinux_2_34_x86_64 \
        --platform manylinux_2_31_x86_64 --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 --platform any -d "$GPU_DIR/wheels" "${WHEELS[@]}"
    split="${UNICOMP_CORPUS:-$HOME/.cache/unicomp/corpus}/$modality/train"
    case "$modality" in
    image) cp -r "$split" "$GPU_DIR/train" ;;
    speech)
        used=$(bash "$ROOT/benchmarks/device_tree.sh" size "$GPU_DIR" | cut -d' ' -f1)
        "$ROOT/.venv/bin/python" "$ROOT/benchmarks/speech_pack.py" --data "$split" \
            --out "$GPU_DIR/train" --budget-mib "$(awk -v c=$CARRY_BYTES -v u="$used" \
            'BEGIN { print c / 1048576 - u }')"
        ;;
    *)
        echo "no recipe for modality '$modality' (image or speech)" >&2
        exit 2
        ;;
    esac
    split_large "$GPU_DIR/run"
    "$ROOT/benchmarks/device_tree.sh" size "$GPU_DIR"
    ;;
--collect)
    mkdir -p "$3"
    cp "$2"/* "$3/"
    join_parts "$3"
    ls -l "$3"
    "$ROOT/benchmarks/device_tree.sh" restore
    ;;
*)
    modality=$1
    config=$2
    seconds=$3
    device=${DEVICE:-cuda}
    out=${OUT:-$GPU_DIR/out}
    cd "$ROOT"
    if [ "$device" = cuda ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --target /tmp/site "$GPU_DIR"/wheels/*.whl
        export PYTHONPATH="/tmp/site:$ROOT"
        options=(--device cuda --precision bf16 --loader-workers 8)
        python=python3
    else
        options=(--device cpu)
        python=${PYTHON:-"$ROOT/.venv/bin/python"}
    fi
    join_parts "$GPU_DIR/run"
    export PYTHONUNBUFFERED=1
    status=0
    # The trainer stops itself at --seconds with a checkpoint; timeout only guards a hang.
    timeout "$((seconds + 90))" "$python" "benchmarks/train_$modality.py" \
        --data "$GPU_DIR/train" --out "$GPU_DIR/run" --config "$config" --resume \
        --seconds "$seconds" "${options[@]}" 2>&1 | tee -a "$GPU_DIR/run/gpu.log" || status=$?
    mkdir -p "$out"
    cp "$GPU_DIR/run"/* "$out/"
    split_large "$out"
    ls -l "$out"
    exit "$status"
    ;;
esac
