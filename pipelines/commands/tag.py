"""`medcorpus tag`: UMLS concepts and modality labels for every caption. Unknown options go to Beam."""

from __future__ import annotations

import argparse
import dataclasses


def _list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tag",
        help="tag captions with UMLS concepts (scispacy) and modality labels",
        description="Tag every caption of a corpus with UMLS concepts and every pair with a modality label. "
        "The input may be any Parquet corpus with `id` and `caption` columns. Any other option is passed to Beam.",
    )
    parser.add_argument("--in", dest="input", required=True, help="input corpus folder")
    parser.add_argument("--out", required=True, help="output corpus folder")
    parser.add_argument("--overwrite", action="store_true", help="replace a corpus already in --out")
    parser.add_argument(
        "--kb", help="knowledge base folder from `medcorpus umls build` (default: the bundled sample KB)"
    )
    parser.add_argument(
        "--semtypes",
        type=_list,
        help="semantic types or groups to keep, comma-separated (TUIs like T047, or groups: disorders, anatomy, "
        "procedures, devices, organisms, findings, chemicals, physiology, genes; default: disorders, anatomy, "
        "procedures, devices, organisms)",
    )
    parser.add_argument(
        "--exclude-semtypes", type=_list, default=[], help="types or groups to drop, e.g. organisms"
    )
    parser.add_argument("--threshold", type=float, default=0.8, help="minimum linker score (default 0.8)")
    parser.add_argument("--batch-size", type=int, default=256, help="captions per nlp.pipe batch")
    parser.set_defaults(func=run, accepts_pipeline_options=True)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipelines import tag
    from pipelines.runner import finish, run_corpus_pipeline

    options = tag.TagOptions(
        input=args.input,
        out=args.out,
        kb=args.kb,
        semtypes=args.semtypes,
        exclude_semtypes=args.exclude_semtypes,
        threshold=args.threshold,
        batch_size=args.batch_size,
    )
    manifest = run_corpus_pipeline(
        lambda p, folder: tag.build(p, dataclasses.replace(options, out=folder), tag.output_schema(options)),
        args.out,
        tag.run_info(options),
        beam_args,
        final_stage="tag",
        title="Concept-tagged corpus",
        overwrite=args.overwrite,
        inputs=[args.input],
    )
    return finish(manifest)
