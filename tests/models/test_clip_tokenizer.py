"""WordPiece tokenizers trained on captions, and the tokenizer specs loader workers build from."""

import pytest
from open_clip.tokenizer import HFTokenizer
from transformers import AutoTokenizer

from models.clip.tokenizer import TokenizerError, TokenizerSpec, train_wordpiece

CAPTIONS = ["Chest X-ray showing bilateral consolidation", "Axial CT of the abdomen", "MRI of the knee"] * 10


def test_trained_tokenizer_loads_in_transformers_and_open_clip(tmp_path):
    folder = train_wordpiece(CAPTIONS, tmp_path / "tok", vocab_size=500)
    assert {"tokenizer.json", "tokenizer_config.json", "vocab.txt"} <= {p.name for p in folder.iterdir()}
    hf = AutoTokenizer.from_pretrained(str(folder))
    assert hf.pad_token_id == 0 and len(hf) <= 500
    ids = hf("CHEST x-ray")["input_ids"]
    assert ids[0] == hf.cls_token_id and ids[-1] == hf.sep_token_id
    assert hf.convert_ids_to_tokens(ids[1:-1])[0] == "chest"  # lowercased
    assert hf.unk_token_id in hf("漢")["input_ids"]
    tokens = HFTokenizer(str(folder), context_length=12)(["axial ct", "mri of the knee"])
    assert tokens.shape == (2, 12) and tokens[0, -1] == 0
    assert (TokenizerSpec("hf", 12, str(folder)).load()(["axial ct"]) == tokens[:1]).all()


def test_cased_tokenizer_keeps_case(tmp_path):
    hf = AutoTokenizer.from_pretrained(str(train_wordpiece(CAPTIONS, tmp_path, 500, lowercase=False)))
    assert "MRI" in hf.tokenize("MRI of the knee")


def test_bpe_spec_uses_open_clips_bundled_vocabulary():
    tokens = TokenizerSpec("bpe", 20).load()(["a red circle"])
    assert tokens.shape == (1, 20) and tokens[0, 0] == 49406  # <start_of_text>


def test_no_captions_and_missing_folders_are_clear_errors(tmp_path):
    with pytest.raises(TokenizerError) as e:
        train_wordpiece([], tmp_path / "tok", 100)
    assert e.value.reason == "caption_empty"
    with pytest.raises(TokenizerError) as e:
        TokenizerSpec("hf", 16, str(tmp_path / "absent")).load()
    assert e.value.reason == "tokenizer_missing"
