"""`medcorpus eval`: retrieval on a corpus split and zero-shot classification for a trained model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a trained model: retrieval on a corpus split, zero-shot classification",
        description="Image-text retrieval (Recall@1/5/10 both ways) on a corpus's held-out split and/or zero-shot "
        "classification (accuracy, macro-AUC) on a classification dataset read with the classification readers.",
    )
    p.add_argument(
        "--checkpoint", required=True, help="a training checkpoint (.pt) or an exported model folder"
    )
    p.add_argument("--corpus", action="append", help="corpus folder for retrieval (repeatable)")
    p.add_argument("--split", default="test", help="corpus split(s), comma-separated (default test)")
    p.add_argument(
        "--zeroshot", help="classification dataset: image folder, CSV/JSONL manifest or HF dataset"
    )
    p.add_argument(
        "--zeroshot-split", default="test", help="the dataset's split to evaluate on (default test)"
    )
    p.add_argument(
        "--zeroshot-splits",
        default="98/1/1",
        help="the --splits the dataset was ingested with, to assign splits as ingest did where the dataset "
        "names none; `all` for a dataset that is not part of the training corpus (default 98/1/1)",
    )
    p.add_argument("--templates", help="prompt templates file, one per line with {} for the class name")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--out", help="also write the results to this JSON file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import torch

    from connectors import fs
    from connectors.splits import SplitRatios
    from models.clip.evaluate import EvalSettings, evaluate, read_templates, split_tuple
    from models.clip.factory import load_trained_clip
    from schemas.errors import ReasonError, UsageError

    if not args.corpus and not args.zeroshot:
        raise UsageError("give --corpus and/or --zeroshot")
    for name in (*split_tuple(args.split), args.zeroshot_split):
        if name not in ("train", "validation", "test"):
            raise UsageError(f"unknown split {name!r}: train, validation or test")
    for corpus in args.corpus or []:
        if not fs.exists(corpus):
            raise FileNotFoundError(f"corpus {corpus} does not exist")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    clip = load_trained_clip(args.checkpoint, device=device)
    results = evaluate(
        clip,
        EvalSettings(
            batch_size=args.batch_size,
            workers=args.workers,
            device=device,
            bf16=device.startswith("cuda"),
        ),
        corpus=args.corpus,
        split=args.split,
        zeroshot=args.zeroshot,
        templates=read_templates(args.templates),
        zeroshot_split=args.zeroshot_split,
        zeroshot_ratios=None if args.zeroshot_splits == "all" else SplitRatios.parse(args.zeroshot_splits),
    )
    for part, what in (
        ("retrieval", f"split {args.split} of {args.corpus}"),
        ("zeroshot", f"{args.zeroshot}"),
    ):
        if part in results and results[part]["n"] == 0:
            raise ReasonError("split_empty", f"nothing to evaluate: no usable samples in {what}")
    text = json.dumps(results, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0
