"""Export a trained model as an open_clip model folder.

The folder holds `open_clip_config.json`, `open_clip_model.safetensors`, `<name>.json` (the bare model
config) and, for a transformers text tower, its `config.json` and tokenizer files. open_clip loads it either
way:

    open_clip.create_model_and_transforms("local-dir:<folder>")
    open_clip.add_model_config("<folder>/<name>.json")
    open_clip.create_model_and_transforms("<name>", pretrained="<folder>/open_clip_model.safetensors")

The text tower's config is found through an absolute path to the folder (open_clip resolves
`hf_model_name` from the working directory); `models.clip.factory.read_model_config` re-points it when the
folder has moved, or edit `hf_model_name`/`hf_tokenizer_name` in both JSON files by hand.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from models.clip.factory import CONFIG_FILE, WEIGHTS_FILE, ClipModel, copy_model_files, write_json_atomic


def export_open_clip(clip: ClipModel, out_dir: str | Path, name: str | None = None) -> Path:
    """Write `clip`'s weights and configs to `out_dir`; returns the weights file."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    copy_model_files(clip.model_dir, out)
    config = copy.deepcopy(clip.config)
    text_cfg = config["model_cfg"]["text_cfg"]
    if text_cfg.get("hf_model_name"):
        text_cfg["hf_model_name"] = text_cfg["hf_tokenizer_name"] = str(out.resolve())
    write_json_atomic(out / CONFIG_FILE, config)
    name = name or f"medcorpus-{config.get('medcorpus', {}).get('preset', 'clip')}"
    write_json_atomic(out / f"{name}.json", config["model_cfg"])
    weights = out / WEIGHTS_FILE
    tmp = out / f".{WEIGHTS_FILE}.tmp"
    # clone: safetensors refuses tensors that share storage
    save_file(
        {k: v.detach().cpu().clone().contiguous() for k, v in unwrap(clip.model).state_dict().items()},
        str(tmp),
    )
    tmp.replace(weights)
    return weights


def unwrap(model: Any) -> torch.nn.Module:
    """The plain module under DDP and torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model
