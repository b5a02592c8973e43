"""`medcorpus umls build|info`: build the concept-tagging KB from a local UMLS release, once."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    umls = subparsers.add_parser("umls", help="build or inspect a UMLS knowledge base for concept tagging")
    actions = umls.add_subparsers(dest="umls_action", required=True, metavar="ACTION")

    build = actions.add_parser(
        "build",
        help="build a KB (entities + TF-IDF/nmslib index) from MRCONSO.RRF and MRSTY.RRF",
        description="Build the concept-tagging knowledge base from a licensed UMLS Metathesaurus release you "
        "already have (its META folder, or any folder with MRCONSO.RRF and MRSTY.RRF): English, non-suppressed "
        "strings of the chosen source vocabularies, their semantic types, then the char-3-gram TF-IDF vectors "
        "and nmslib index scispacy's linker reads. Nothing is downloaded. A full release takes hours to index.",
    )
    build.add_argument(
        "--rrf-dir", help="folder with MRCONSO.RRF and MRSTY.RRF (default: the bundled sample)"
    )
    build.add_argument("--out", required=True, help="KB folder to write")
    build.add_argument(
        "--sources", help="comma-separated source vocabularies (SAB) to keep, e.g. MSH,SNOMEDCT_US"
    )
    build.add_argument("--languages", default="ENG", help="comma-separated LAT values to keep (default ENG)")
    build.add_argument("--include-suppressed", action="store_true", help="keep suppressible strings too")
    build.add_argument("--name", default=None, help="KB name recorded in corpus manifests (default umls)")
    build.add_argument("--version", default=None, help="KB version (default: release.dat's release name)")
    build.add_argument(
        "--vocabulary",
        action="append",
        help="text file of captions/words the TF-IDF vocabulary is also fitted on (repeatable; "
        "default: the bundled caption vocabulary)",
    )
    build.add_argument("--threads", type=int, default=1, help="nmslib index build threads (default 1)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing KB in --out")
    build.set_defaults(func=_build)

    info = actions.add_parser("info", help="print a KB's identity and build statistics")
    info.add_argument("kb_dir", nargs="?", help="KB folder (default: the bundled sample KB, built if needed)")
    info.set_defaults(func=_info)


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _build(args: argparse.Namespace, extra: list[str]) -> int:
    from curation.concepts import ConceptKbError, build_kb, bundled_rrf_dir

    rrf_dir = args.rrf_dir or bundled_rrf_dir()
    try:
        identity = build_kb(
            rrf_dir,
            args.out,
            sources=_split(args.sources),
            languages=_split(args.languages) or ["ENG"],
            include_suppressed=args.include_suppressed,
            name=args.name or ("medcorpus-umls-sample" if args.rrf_dir is None else "umls"),
            version=args.version,
            vocabulary_files=args.vocabulary,
            threads=args.threads,
            overwrite=args.overwrite,
        )
    except (ConceptKbError, FileExistsError) as exc:
        print(f"medcorpus umls build: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"kb_dir": str(args.out), **identity.as_dict()}))
    return 0


def _info(args: argparse.Namespace, extra: list[str]) -> int:
    from pathlib import Path

    from curation.concepts import ConceptKbError, default_kb_dir

    kb_dir = Path(args.kb_dir) if args.kb_dir else default_kb_dir()
    try:
        meta = json.loads((kb_dir / "kb_meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(
            f"medcorpus umls info: {ConceptKbError('kb_missing', f'{kb_dir} has no kb_meta.json')}",
            file=sys.stderr,
        )
        return 2
    print(json.dumps({"kb_dir": str(kb_dir), **meta}, indent=2))
    return 0
