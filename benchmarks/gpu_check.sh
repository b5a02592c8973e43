#!/usr/bin/env bash
# The trainer's GPU check (issue: speed against open_clip), prepared for the workplace's device tool.
#
# Here, once (downloads the wheels the GPU machine lacks into .whl/, which git ignores):
#   bash benchmarks/gpu_check.sh prepare
# Then one device call, carrying .whl:
#   run(command="bash benchmarks/gpu_check.sh run", carry=[".whl"], timeout_s=540)
# It prints samples/s of medcorpus and of open_clip_train.main on biomedclip-vitb16 (batch 256, bf16,
# 60 steps), their ratio, peak GPU memory and the data loader's share of step time, and writes
# $OUT/bench_train_gpu.json.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  prepare)
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 webdataset==1.0.2 braceexpand==0.1.7
    ;;
  run)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
    nvidia-smi -L
    python3 benchmarks/bench_train_gpu.py --out-dir "${OUT:-/tmp}"
    ;;
  *)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
