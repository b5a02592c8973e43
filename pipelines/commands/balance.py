"""`medcorpus balance`: a MetaCLIP-style concept-balanced subset of a tagged corpus."""

from __future__ import annotations

import argparse
import dataclasses

from schemas.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "balance",
        help="a concept-balanced subset: no concept contributes more than N pairs",
        description="Down-sample head concepts so no UMLS concept contributes more than N pairs; tail concepts are "
        "kept whole. Deterministic for a given seed. The input must be tagged (`medcorpus tag`). Any other option "
        "is passed to Beam.",
    )
    parser.add_argument("--in", dest="input", required=True, help="tagged input corpus")
    parser.add_argument("--out", required=True, help="output corpus folder")
    parser.add_argument(
        "--max-per-concept", type=int, required=True, help="N: the most pairs any concept may contribute"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace a corpus already in --out")
    parser.set_defaults(func=run, accepts_pipeline_options=True)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipelines import balance
    from pipelines.runner import finish, run_corpus_pipeline

    if args.max_per_concept < 1:
        raise UsageError("--max-per-concept must be at least 1")
    options = balance.BalanceOptions(args.input, args.out, args.max_per_concept, args.seed)
    manifest = run_corpus_pipeline(
        lambda p, folder: balance.build(
            p, dataclasses.replace(options, out=folder), balance.output_schema(options)
        ),
        args.out,
        balance.run_info(options),
        beam_args,
        final_stage="balance",
        title=f"Concept-balanced subset (at most {args.max_per_concept} pairs per concept)",
        overwrite=args.overwrite,
        after_run=balance.histograms,
        inputs=[args.input],
    )
    return finish(manifest)
