"""Build the CLIP model of a preset with open_clip's own factory, from local files only.

Every model lives in a *model folder* laid out as open_clip's `local-dir:` format: `open_clip_config.json`
(model and preprocess config) and, for a transformers text tower, that tower's `config.json` and tokenizer
files, with `hf_model_name`/`hf_tokenizer_name` pointing at the folder itself. open_clip builds the model
from it with no hub access; an exported model is the same folder plus a weights file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.clip.presets import Preset
from models.clip.tokenizer import TokenizerError, TokenizerSpec, hf_tokenizer_info
from schemas.errors import ReasonError

log = logging.getLogger(__name__)

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
WEIGHT_FILES = (WEIGHTS_FILE, "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth")


class ModelBuildError(ReasonError, ValueError):
    """A model that cannot be built from the given preset, tokenizer and weights."""


@dataclass
class ClipModel:
    model: Any  # open_clip CLIP or CustomTextCLIP
    train_transform: Any
    val_transform: Any
    tokenizer: TokenizerSpec
    model_dir: Path
    config: dict[str, Any]  # the open_clip_config.json content

    @property
    def image_size(self) -> int:
        size = self.config["model_cfg"]["vision_cfg"].get("image_size", 224)
        return int(size[0] if isinstance(size, list | tuple) else size)


def prepare_model_dir(
    preset: Preset,
    model_dir: str | Path,
    tokenizer_dir: str | Path | None = None,
    text_model: str | Path | None = None,
) -> Path:
    """Write the open_clip model folder for `preset`.

    `tokenizer_dir`: a local HF tokenizer folder (required for a transformers text tower unless `text_model`
    holds one). `text_model`: a local HF model folder whose config replaces the preset's text config (its
    weights are loaded by `create_clip`).
    """
    require_local_folder(tokenizer_dir, "tokenizer")
    require_local_folder(text_model, "text model")
    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = preset.model_cfg_copy()
    if preset.has_hf_text:
        _write_hf_text_files(preset, out, tokenizer_dir or text_model, text_model)
        cfg["text_cfg"]["hf_model_name"] = str(out.resolve())
        cfg["text_cfg"]["hf_tokenizer_name"] = str(out.resolve())
        cfg["text_cfg"]["hf_model_pretrained"] = False
    elif tokenizer_dir is not None or text_model is not None:
        raise ModelBuildError("preset_mismatch", f"preset {preset.name} uses open_clip's BPE text tower")
    config = {
        "model_cfg": cfg,
        "preprocess_cfg": preset.preprocess_cfg,
        "medcorpus": {"preset": preset.name, "tokenizer": preset.tokenizer},
    }
    write_json_atomic(out / CONFIG_FILE, config)
    return out


def require_local_folder(path: str | Path | None, what: str) -> None:
    """Weights and tokenizers come from local folders only: a hub id here would be a silent download."""
    if path is not None and not Path(path).is_dir():
        raise ModelBuildError(
            "path_not_local", f"{what} {path} is not a local folder (medcorpus never downloads weights)"
        )


def _write_hf_text_files(
    preset: Preset, out: Path, tokenizer_dir: str | Path | None, text_model: str | Path | None
):
    from transformers import AutoConfig, AutoTokenizer

    if tokenizer_dir is None:
        raise TokenizerError(
            "tokenizer_missing",
            f"preset {preset.name} has a WordPiece text tower: pass a tokenizer folder "
            "(`medcorpus tokenizer train --corpus ...` makes one)",
        )
    vocab, pad_id = hf_tokenizer_info(tokenizer_dir)
    if text_model is not None:
        config = AutoConfig.from_pretrained(str(text_model), local_files_only=True)
        if config.pad_token_id is not None and config.pad_token_id != pad_id:
            raise ModelBuildError(
                "tokenizer_mismatch",
                f"{tokenizer_dir} pads with {pad_id}, {text_model} with {config.pad_token_id}",
            )
    else:
        settings = dict(preset.hf_text_config or {})
        config = AutoConfig.for_model(settings.pop("model_type"), **settings)
        config.pad_token_id = pad_id  # open_clip's HF encoder masks attention by this id
    if vocab > config.vocab_size:
        raise ModelBuildError(
            "tokenizer_vocab_too_large",
            f"tokenizer {tokenizer_dir} has {vocab} tokens; the text tower embeds {config.vocab_size}",
        )
    if Path(tokenizer_dir).resolve() != out.resolve():
        AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True).save_pretrained(str(out))
    config.save_pretrained(str(out))


def create_clip(
    model_dir: str | Path,
    text_model: str | Path | None = None,
    init: str | Path | None = None,
    device: str = "cpu",
) -> ClipModel:
    """Build the model of a model folder: random weights, then `text_model`'s and `init`'s where given.

    `init`: an open_clip checkpoint file or an exported model folder, loaded strictly.
    """
    import open_clip

    model_dir = Path(model_dir)
    config = read_model_config(model_dir)
    model, train_transform, val_transform = open_clip.create_model_and_transforms(
        f"local-dir:{model_dir}", pretrained_text=False, device=device, output_dict=True
    )
    if text_model is not None:
        require_local_folder(text_model, "text model")
        _load_hf_text_weights(model, text_model)
    if init is not None:
        path = weights_file(init)
        log.info("initialising from %s", path)
        open_clip.load_checkpoint(model, str(path), strict=True)
    text_cfg = config["model_cfg"]["text_cfg"]
    spec = TokenizerSpec(
        kind="hf" if text_cfg.get("hf_model_name") else "bpe",
        context_length=int(text_cfg.get("context_length", 77)),
        path=str(model_dir.resolve()) if text_cfg.get("hf_model_name") else None,
    )
    return ClipModel(model, train_transform, val_transform, spec, model_dir, config)


def _load_hf_text_weights(model: Any, text_model: str | Path) -> None:
    from transformers import AutoModel

    pretrained = AutoModel.from_pretrained(str(text_model), add_pooling_layer=False, local_files_only=True)
    missing, unexpected = model.text.transformer.load_state_dict(pretrained.state_dict(), strict=False)
    if missing:
        raise ModelBuildError(
            "text_model_mismatch", f"{text_model} lacks {len(missing)} weights, e.g. {missing[:3]}"
        )
    log.info("text tower weights from %s (%d unused)", text_model, len(unexpected))


def read_model_config(model_dir: Path) -> dict[str, Any]:
    """The folder's open_clip config, re-pointed at the folder if it was moved since it was written."""
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        raise ModelBuildError("model_config_missing", f"{path} does not exist")
    config = json.loads(path.read_text())
    text_cfg = config["model_cfg"]["text_cfg"]
    here = str(model_dir.resolve())
    if (
        text_cfg.get("hf_model_name")
        and text_cfg["hf_model_name"] != here
        and (model_dir / "config.json").is_file()
    ):
        log.info("model folder moved: pointing its text tower config at %s", here)
        text_cfg["hf_model_name"] = text_cfg["hf_tokenizer_name"] = here
        write_json_atomic(path, config)
    return config


def weights_file(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        for name in WEIGHT_FILES:
            if (path / name).is_file():
                return path / name
        raise ModelBuildError("weights_missing", f"no {' / '.join(WEIGHT_FILES)} in {path}")
    if not path.is_file():
        raise ModelBuildError("weights_missing", f"{path} does not exist")
    return path


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def copy_model_files(src: Path, dst: Path) -> None:
    """Copy a model folder's config and tokenizer files (not weights) to `dst`."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_file() and item.name not in WEIGHT_FILES and item.name != CONFIG_FILE:
            shutil.copy2(item, dst / item.name)


def load_trained_clip(path: str | Path, device: str = "cpu") -> ClipModel:
    """A model to evaluate or export: an exported model folder, or a medcorpus training checkpoint."""
    path = Path(path)
    if path.is_dir():
        return create_clip(path, init=path, device=device)
    from models.clip.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)
    clip = create_clip((path.parent / checkpoint["model_dir"]).resolve(), device=device)
    clip.model.load_state_dict(checkpoint["state_dict"])
    return clip
