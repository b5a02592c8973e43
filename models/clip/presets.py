"""Model presets as data: one JSON file per preset in `presets/`, in open_clip's config layout.

A preset file holds `model_cfg` (open_clip's `embed_dim`/`vision_cfg`/`text_cfg`), `preprocess_cfg`, and
what open_clip keeps elsewhere: `hf_text_config` (the HF config of a transformers text tower, so no hub
download is needed to build it) and `tokenizer` (`wordpiece` with a vocabulary size, or open_clip's `bpe`).
`--preset` also accepts a path to such a file.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRESET_DIR = Path(__file__).with_name("presets")


class PresetError(ValueError):
    reason = "preset_unknown"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    model_cfg: dict[str, Any]
    preprocess_cfg: dict[str, Any]
    tokenizer: dict[str, Any]
    hf_text_config: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def context_length(self) -> int:
        """Tokens per caption. For HF text towers this, not the BERT config's 512 positions, is what counts."""
        return int(self.model_cfg["text_cfg"]["context_length"])

    @property
    def image_size(self) -> int:
        return int(self.model_cfg["vision_cfg"]["image_size"])

    @property
    def has_hf_text(self) -> bool:
        return self.hf_text_config is not None

    def model_cfg_copy(self) -> dict[str, Any]:
        return copy.deepcopy(self.model_cfg)


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def get_preset(name_or_path: str) -> Preset:
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = PRESET_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise PresetError(f"preset_unknown: {name_or_path!r}; known presets: {', '.join(list_presets())}")
    data = json.loads(path.read_text())
    missing = {"model_cfg", "preprocess_cfg", "tokenizer"} - data.keys()
    if missing:
        raise PresetError(f"preset_invalid: {path} lacks {sorted(missing)}")
    if "hf_text_config" in data and data["tokenizer"].get("kind") != "wordpiece":
        raise PresetError(f"preset_invalid: {path}: a transformers text tower needs a wordpiece tokenizer")
    known = {"description", "model_cfg", "preprocess_cfg", "tokenizer", "hf_text_config"}
    return Preset(
        name=path.stem,
        description=data.get("description", ""),
        model_cfg=data["model_cfg"],
        preprocess_cfg=data["preprocess_cfg"],
        tokenizer=data["tokenizer"],
        hf_text_config=data.get("hf_text_config"),
        extra={k: v for k, v in data.items() if k not in known},
    )
