"""Tokenizers for the text towers: a WordPiece tokenizer trained on corpus captions, or open_clip's BPE.

Both load through open_clip's own classes (`HFTokenizer` for a local HF tokenizer folder, `SimpleTokenizer`
for the bundled BPE vocabulary), always at the preset's context length: open_clip's HF text encoder reports
the BERT config's 512 positions, while BiomedCLIP tokenizes to 256.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ReasonError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] first: BERT's pad_token_id is 0


class TokenizerError(ReasonError, ValueError):
    """A tokenizer that cannot be trained or loaded."""


@dataclass(frozen=True)
class TokenizerSpec:
    """What a data-loader worker needs to build the tokenizer itself (picklable, no loaded state)."""

    kind: str  # "hf" (a local folder readable by transformers.AutoTokenizer) or "bpe" (open_clip's bundled)
    context_length: int
    path: str | None = None

    def load(self) -> Callable[[list[str]], object]:
        """A callable turning a list of captions into a LongTensor [n, context_length]."""
        if self.kind == "bpe":
            from open_clip.tokenizer import SimpleTokenizer

            return SimpleTokenizer(context_length=self.context_length)
        if self.kind != "hf" or not self.path:
            raise TokenizerError("tokenizer_missing", f"no tokenizer folder for kind {self.kind!r}")
        if not Path(self.path).is_dir():
            raise TokenizerError("tokenizer_missing", f"{self.path} is not a folder")
        from open_clip.tokenizer import HFTokenizer

        return HFTokenizer(self.path, context_length=self.context_length)


def hf_tokenizer_info(path: str | Path) -> tuple[int, int]:
    """(vocabulary size, pad token id) of a local HF tokenizer folder."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as e:
        raise TokenizerError("tokenizer_invalid", f"{path}: {e}") from e
    if tokenizer.pad_token_id is None:
        raise TokenizerError("tokenizer_invalid", f"{path} has no pad token")
    return len(tokenizer), int(tokenizer.pad_token_id)


def train_wordpiece(
    texts: Iterable[str], out_dir: str | Path, vocab_size: int, lowercase: bool = True, min_frequency: int = 0
) -> Path:
    """Train a BERT-style WordPiece tokenizer on `texts` and save it as a transformers tokenizer folder.

    The folder (tokenizer.json, tokenizer_config.json, vocab.txt) loads with `AutoTokenizer.from_pretrained`
    and with open_clip's `HFTokenizer`. HF's trainer breaks ties between equally frequent merges in hash
    order, so two trainings on the same captions can differ slightly: train once and reuse the folder
    (a run keeps its own in `<out>/model`, which `--resume` reuses).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS
    )
    counted = _CountingIterator(texts)
    tokenizer.train_from_iterator(counted, trainer)
    if counted.count == 0:
        raise TokenizerError("caption_empty", "no captions to train the tokenizer on")
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer.decoder = decoders.WordPiece()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    BertTokenizerFast(tokenizer_object=tokenizer, do_lower_case=lowercase).save_pretrained(str(out))
    # vocab.txt too, so slow BERT tokenizers and other tools read the folder as well
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    (out / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab))
    return out


class _CountingIterator:
    def __init__(self, texts: Iterable[str]) -> None:
        self._texts = iter(texts)
        self.count = 0

    def __iter__(self) -> _CountingIterator:
        return self

    def __next__(self) -> str:
        text = next(self._texts)
        self.count += 1
        return text
