"""`medcorpus ingest pmc|classification`: build a corpus from a source. Unknown options go to Beam."""

from __future__ import annotations

import argparse
import sys

EXIT_NOT_RECONCILED = 3


def add_image_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("images")
    group.add_argument(
        "--max-side", type=int, default=1024, help="longest image side after resizing (default 1024)"
    )
    group.add_argument("--min-side", type=int, default=32, help="smaller images are rejected (default 32)")
    group.add_argument(
        "--image-format",
        choices=["jpeg", "png"],
        default="jpeg",
        help="encoding of stored images (default jpeg)",
    )
    group.add_argument("--jpeg-quality", type=int, default=90)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="corpus folder to write (local path or fsspec URL)")
    parser.add_argument("--overwrite", action="store_true", help="replace a corpus already in --out")
    parser.add_argument(
        "--splits",
        default="98/1/1",
        help="train/validation/test ratios, assigned by article or patient (default 98/1/1)",
    )


def image_options(args: argparse.Namespace):
    from connectors.images import ImageOptions

    return ImageOptions(
        max_side=args.max_side,
        min_side=args.min_side,
        format=args.image_format,
        jpeg_quality=args.jpeg_quality,
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    ingest = subparsers.add_parser("ingest", help="build a corpus from a source (Apache Beam)")
    sources = ingest.add_subparsers(dest="source_kind", required=True, metavar="SOURCE")

    pmc = sources.add_parser(
        "pmc",
        help="figure-caption pairs from PubMed Central Open Access",
        description="Figure-caption pairs from PMC Open Access: the Cloud Service layout (s3://pmc-oa-opendata/ "
        "or a local copy) or legacy packages (oa_file_list.csv + PMC*.tar.gz). Any other option is passed to "
        "Apache Beam (for example --runner DataflowRunner --project ... --region ...).",
    )
    pmc.add_argument(
        "--source", required=True, help="source root: s3://pmc-oa-opendata/, a local folder, gs://, https://"
    )
    add_output_options(pmc)
    pmc.add_argument(
        "--license",
        choices=["commercial", "noncommercial", "all"],
        default="all",
        help="commercial: CC0/CC BY/CC BY-SA/CC BY-ND; noncommercial: those plus the CC BY-NC family; all (default)",
    )
    pmc.add_argument("--pmcids", help="file of PMCIDs to ingest, one per line")
    pmc.add_argument("--limit", type=int, help="ingest only the first N articles (by PMCID)")
    pmc.add_argument(
        "--listing",
        choices=["auto", "inventory", "prefix"],
        default="auto",
        help="how to list a Cloud Service source: its S3 inventory (auto when present) or a prefix listing",
    )
    pmc.add_argument(
        "--all-versions", action="store_true", help="keep every article version, not just the newest"
    )
    pmc.add_argument("--include-retracted", action="store_true", help="keep articles PMC marks as retracted")
    add_image_options(pmc)
    pmc.set_defaults(func=run_pmc, accepts_pipeline_options=True)


def run_pmc(args: argparse.Namespace, beam_args: list[str]) -> int:
    from connectors.pmc_source import read_pmcid_file
    from connectors.splits import SplitRatios
    from pipelines import pmc_ingest
    from pipelines.runner import run_corpus_pipeline, summary

    options = pmc_ingest.PmcIngestOptions(
        source=args.source,
        out=args.out,
        license=args.license,
        pmcids=read_pmcid_file(args.pmcids) if args.pmcids else None,
        limit=args.limit,
        listing=args.listing,
        all_versions=args.all_versions,
        include_retracted=args.include_retracted,
        image=image_options(args),
        splits=SplitRatios.parse(args.splits),
    )
    run = pmc_ingest.run_info(options)
    manifest = run_corpus_pipeline(
        lambda p: pmc_ingest.build(p, options),
        args.out,
        run,
        beam_args,
        final_stage="figures",
        title="PMC Open Access figure-caption pairs",
        overwrite=args.overwrite,
    )
    print(summary(manifest), file=sys.stderr)
    return 0 if manifest["reconciled"] else EXIT_NOT_RECONCILED
