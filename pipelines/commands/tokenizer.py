"""`medcorpus tokenizer train`: a WordPiece tokenizer from a corpus's captions, for pretraining from scratch."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    tokenizer = subparsers.add_parser("tokenizer", help="tokenizers for the text tower")
    actions = tokenizer.add_subparsers(dest="tokenizer_action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "train",
        help="train a WordPiece tokenizer on a corpus's captions",
        description="Train a BERT-style WordPiece tokenizer (HF tokenizers) on the captions of a corpus split and "
        "save it as a transformers tokenizer folder, for `medcorpus train --tokenizer`.",
    )
    p.add_argument(
        "--corpus",
        required=True,
        action="append",
        help="corpus folder (local path or fsspec URL); repeat it to train on several corpora as one",
    )
    p.add_argument("--out", required=True, help="tokenizer folder to write")
    p.add_argument(
        "--vocab-size", type=int, default=30522, help="default 30522 (BiomedCLIP's BERT vocabulary size)"
    )
    p.add_argument("--split", default="train", help="split whose captions to learn from (default train)")
    p.add_argument(
        "--cased", action="store_true", help="keep case (default: lowercase, like PubMedBERT uncased)"
    )
    p.add_argument("--min-frequency", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from models.clip.corpus_index import CorpusIndex, RowFilter, iter_captions
    from models.clip.tokenizer import hf_tokenizer_info, train_wordpiece

    index = CorpusIndex.build(args.corpus, RowFilter(splits=(args.split,)))
    out = train_wordpiece(
        iter_captions(index),
        args.out,
        args.vocab_size,
        lowercase=not args.cased,
        min_frequency=args.min_frequency,
    )
    vocab, _ = hf_tokenizer_info(out)
    print(json.dumps({"tokenizer": str(out), "vocab_size": vocab, "rows": index.num_rows}))
    return 0
