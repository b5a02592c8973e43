"""Model folders from local files only, and exports that open_clip itself loads."""

import shutil

import open_clip
import pytest
import torch
from transformers import AutoConfig, BertModel

from models.clip.export import export_open_clip
from models.clip.factory import ModelBuildError, create_clip, load_trained_clip, prepare_model_dir
from models.clip.presets import get_preset
from models.clip.tokenizer import TokenizerError, train_wordpiece

CAPTIONS = ["a red circle", "a blue square", "a green triangle", "chest x-ray"]


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_wordpiece(CAPTIONS * 5, tmp_path_factory.mktemp("tok"), vocab_size=300)


def embeddings(model, tokens, image_size):
    model.eval()
    torch.manual_seed(0)
    images = torch.rand(2, 3, image_size, image_size)
    with torch.no_grad():
        return model.encode_image(images, normalize=True), model.encode_text(tokens, normalize=True)


@pytest.mark.parametrize("preset", ["tiny", "tiny-bpe"])
def test_export_loads_in_open_clip_both_ways_with_identical_outputs(tmp_path, tokenizer, preset):
    hf = get_preset(preset).has_hf_text
    torch.manual_seed(1)
    clip = create_clip(prepare_model_dir(get_preset(preset), tmp_path / "model", tokenizer if hf else None))
    weights = export_open_clip(clip, tmp_path / "export", name=f"test-export-{preset}")
    tokens = clip.tokenizer.load()(CAPTIONS[:2])
    ours = embeddings(clip.model, tokens, clip.image_size)

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'export'}")
    loaded_tokenizer = open_clip.get_tokenizer(f"local-dir:{tmp_path / 'export'}")
    assert torch.equal(loaded_tokenizer(CAPTIONS[:2]), tokens)
    for a, b in zip(ours, embeddings(model, tokens, clip.image_size), strict=True):
        assert torch.allclose(a, b, atol=1e-6)

    open_clip.add_model_config(tmp_path / "export" / f"test-export-{preset}.json")
    model, _, _ = open_clip.create_model_and_transforms(f"test-export-{preset}", pretrained=str(weights))
    for a, b in zip(ours, embeddings(model, tokens, clip.image_size), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_moved_export_is_repointed_and_loads(tmp_path, tokenizer):
    clip = create_clip(prepare_model_dir(get_preset("tiny"), tmp_path / "model", tokenizer))
    export_open_clip(clip, tmp_path / "export")
    moved = tmp_path / "elsewhere"
    shutil.move(tmp_path / "export", moved)
    loaded = load_trained_clip(moved)
    assert loaded.config["model_cfg"]["text_cfg"]["hf_model_name"] == str(moved.resolve())
    for a, b in zip(clip.model.state_dict().values(), loaded.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_text_tower_initialised_from_a_local_hf_folder(tmp_path, tokenizer):
    settings = dict(get_preset("tiny").hf_text_config)
    bert = BertModel(AutoConfig.for_model(settings.pop("model_type"), **settings), add_pooling_layer=False)
    bert.save_pretrained(tmp_path / "bert")
    model_dir = prepare_model_dir(
        get_preset("tiny"), tmp_path / "model", tokenizer, text_model=tmp_path / "bert"
    )
    clip = create_clip(model_dir, text_model=tmp_path / "bert")
    assert torch.equal(
        clip.model.text.transformer.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight
    )


def test_init_from_an_exported_model_copies_every_weight(tmp_path, tokenizer):
    torch.manual_seed(5)
    source = create_clip(prepare_model_dir(get_preset("tiny"), tmp_path / "a", tokenizer))
    export_open_clip(source, tmp_path / "export")
    torch.manual_seed(6)
    target = create_clip(
        prepare_model_dir(get_preset("tiny"), tmp_path / "b", tokenizer), init=tmp_path / "export"
    )
    for (name, a), b in zip(
        source.model.state_dict().items(), target.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_build_errors_have_reason_codes(tmp_path, tokenizer):
    with pytest.raises(TokenizerError) as e:
        prepare_model_dir(get_preset("tiny"), tmp_path / "a")
    assert e.value.reason == "tokenizer_missing"
    big = train_wordpiece([f"word{i} token{i}" for i in range(3000)], tmp_path / "big", vocab_size=6000)
    with pytest.raises(ModelBuildError) as e:
        prepare_model_dir(get_preset("tiny"), tmp_path / "b", big)
    assert e.value.reason == "tokenizer_vocab_too_large"
    with pytest.raises(ModelBuildError) as e:
        prepare_model_dir(get_preset("tiny-bpe"), tmp_path / "c", tokenizer)
    assert e.value.reason == "preset_mismatch"
    with pytest.raises(ModelBuildError) as e:
        create_clip(tmp_path / "nothing-here")
    assert e.value.reason == "model_config_missing"
