"""`medcorpus report` (the corpus's HTML report, written into the folder) and `medcorpus stats` (the
same numbers as terminal tables). Neither runs a pipeline: both read the finished corpus."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report",
        help="write CORPUS/report.html: a self-contained page of plots, tables and sample pairs",
        description="Write a self-contained HTML report (images embedded, works offline) into the corpus folder: "
        "pairs per split, source and licence group, modalities, concepts, caption and image sizes, rejects and "
        "removals with examples, dedupe's kept and removed pairs, and sample pairs by modality. Every pipeline "
        "run writes it too; this rewrites it on demand.",
    )
    report.add_argument("corpus", help="a finished corpus folder (local path or URL)")
    report.add_argument("--out", help="write the page here instead of CORPUS/report.html")
    report.set_defaults(func=run_report)

    stats = subparsers.add_parser(
        "stats",
        help="print the report's numbers as tables",
        description="Print the numbers of the corpus report as plain tables for the terminal.",
    )
    stats.add_argument("corpus", help="a finished corpus folder (local path or URL)")
    stats.set_defaults(func=run_stats)


def _check(corpus: str) -> None:
    from connectors import fs
    from connectors.corpus import MANIFEST
    from schemas.errors import ReasonError

    if not fs.exists(corpus):
        raise FileNotFoundError(f"{corpus} does not exist")
    if not fs.exists(fs.join(corpus, MANIFEST)):
        raise ReasonError(
            "corpus_incomplete", f"{corpus} has no {MANIFEST}: it is not a finished medcorpus corpus"
        )


def run_report(args: argparse.Namespace, extra: list[str]) -> int:
    from connectors import fs
    from connectors.report import render_report, write_report

    _check(args.corpus)
    if args.out:
        filesystem, path = fs.filesystem(args.out)
        with filesystem.open(path, "w", encoding="utf-8") as f:
            f.write(render_report(args.corpus))
        print(args.out)
    else:
        print(write_report(args.corpus))
    return 0


def run_stats(args: argparse.Namespace, extra: list[str]) -> int:
    from connectors.report import corpus_tables, format_text

    _check(args.corpus)
    print(format_text(corpus_tables(args.corpus)), end="")
    return 0
