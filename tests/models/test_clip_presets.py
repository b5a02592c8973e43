"""Presets are data; the biomedclip preset builds BiomedCLIP's architecture without any download."""

import json

import pytest
import torch
from transformers import BertModel

from models.clip.factory import create_clip, prepare_model_dir
from models.clip.presets import PRESET_DIR, PresetError, get_preset, list_presets
from models.clip.tokenizer import train_wordpiece


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def test_bundled_presets():
    assert {"biomedclip-vitb16", "biomedclip-vitb16-bpe", "tiny", "tiny-bpe"} <= set(list_presets())
    biomedclip = get_preset("biomedclip-vitb16")
    assert biomedclip.context_length == 256 and biomedclip.image_size == 224
    assert biomedclip.preprocess_cfg["mean"] == [0.48145466, 0.4578275, 0.40821073]  # OpenAI CLIP statistics


def test_biomedclip_preset_builds_biomedclip_architecture(tmp_path):
    tokenizer = train_wordpiece(
        ["chest x-ray with consolidation", "axial ct of the abdomen"] * 5, tmp_path / "tok", 30522
    )
    model_dir = prepare_model_dir(
        get_preset("biomedclip-vitb16"), tmp_path / "model", tokenizer_dir=tokenizer
    )
    clip = create_clip(model_dir)
    model = clip.model
    trunk = model.visual.trunk
    assert (trunk.patch_embed.patch_size, trunk.embed_dim, len(trunk.blocks)) == ((16, 16), 768, 12)
    assert model.visual.head.proj.in_features == 768 and model.visual.head.proj.out_features == 512
    bert = model.text.transformer
    assert isinstance(bert, BertModel) and bert.pooler is None
    assert (bert.config.vocab_size, bert.config.hidden_size, bert.config.num_hidden_layers) == (
        30522,
        768,
        12,
    )
    assert type(model.text.pooler).__name__ == "ClsLastHiddenStatePooler"
    mlp = model.text.proj
    assert [type(m).__name__ for m in mlp] == ["Linear", "GELU", "Linear"] and mlp[-1].out_features == 512
    assert 190e6 < sum(p.numel() for p in model.parameters()) < 200e6  # BiomedCLIP has ~196M
    # the known trap: open_clip's HF encoder reports BERT's 512 positions, BiomedCLIP tokenizes to 256
    assert model.text.context_length == 512
    assert clip.tokenizer.context_length == 256
    assert clip.tokenizer.load()(["axial ct"]).shape == (1, 256)


def test_a_preset_file_path_is_accepted(tmp_path):
    data = json.loads((PRESET_DIR / "tiny-bpe.json").read_text())
    data["model_cfg"]["embed_dim"] = 64
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    preset = get_preset(str(path))
    assert preset.name == "mine" and preset.model_cfg["embed_dim"] == 64


@pytest.mark.parametrize(
    "content, reason",
    [(None, "preset_unknown"), ({"model_cfg": {}}, "preset_invalid")],
)
def test_bad_presets_are_clear_errors(tmp_path, content, reason):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(json.dumps(content))
    with pytest.raises(PresetError) as e:
        get_preset(str(path) if content is not None else "no-such-preset")
    assert str(e.value).startswith(reason)


def test_hub_ids_are_refused_not_downloaded(tmp_path):
    """A hub id where a local folder belongs would be a silent download: it is an error instead."""
    from models.clip.factory import ModelBuildError, prepare_model_dir

    preset = get_preset("biomedclip-vitb16")
    for kwargs in ({"tokenizer_dir": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"},
                   {"text_model": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"}):  # fmt: skip
        with pytest.raises(ModelBuildError) as err:
            prepare_model_dir(preset, tmp_path / "model", **kwargs)
        assert err.value.reason == "path_not_local"
