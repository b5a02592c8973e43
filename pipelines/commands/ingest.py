"""`medcorpus ingest pmc|classification`: build a corpus from a source. Unknown options go to Beam."""

from __future__ import annotations

import argparse
import dataclasses

from schemas.errors import UsageError


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


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    pmc.add_argument("--limit", type=positive_int, help="ingest only the first N articles (by PMCID)")
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

    cls = sources.add_parser(
        "classification",
        help="image-caption pairs from an image classification dataset, captions written by an LLM",
        description="Image-caption pairs from a classification dataset (DICOM, NIfTI, PNG/JPEG/TIFF): K captions "
        "per class from an LLM grounded in the dataset card, post-filtered, joined back to the images. Any other "
        "option is passed to Apache Beam.",
    )
    cls.add_argument(
        "--dataset",
        required=True,
        help="an image folder (root/<class>/<image>), a CSV/JSONL manifest, or a HuggingFace dataset folder",
    )
    add_output_options(cls)
    cls.add_argument(
        "--card", help="dataset card (YAML): modality, anatomy, classes with descriptions and synonyms"
    )
    cls.add_argument(
        "--name", help="dataset name used in record ids (default: the card's name, else the folder name)"
    )
    cls.add_argument(
        "--dataset-root",
        help="manifests: the folder their paths are relative to and must stay inside (default: the manifest's "
        "own folder; CheXpert: the folder above its CSVs)",
    )
    cls.add_argument("--label-column", help="HF datasets: the ClassLabel column (default: the first one)")
    cls.add_argument("--image-column", help="HF datasets: the image column (default: the first Image column)")
    llm = cls.add_argument_group("captions")
    llm.add_argument(
        "--llm",
        choices=["template", "vllm", "openai"],
        default="template",
        help="caption backend (default template)",
    )
    llm.add_argument("--model", help="vllm: a local HF model folder; openai: the served model name")
    llm.add_argument("--server-url", help="openai: the server's base URL, e.g. http://127.0.0.1:8000/v1")
    llm.add_argument("--captions-per-class", type=int, default=10, help="K captions per class (default 10)")
    llm.add_argument(
        "--caption-mode",
        choices=["list", "records"],
        default="list",
        help="list: one record per image holding all K captions (default); records: one record per caption",
    )
    llm.add_argument("--temperature", type=float, default=0.8)
    llm.add_argument("--max-tokens", type=int, default=96)
    llm.add_argument("--concurrency", type=int, default=32, help="openai: requests in flight")
    llm.add_argument(
        "--cache-dir",
        help="cache of LLM calls, so reruns and resumed runs pay nothing (default: $MEDCORPUS_CACHE/captions "
        "or ~/.cache/medcorpus/captions; any fsspec URL; 'none' disables it)",
    )
    volume = cls.add_argument_group("volumes and multi-frame files")
    volume.add_argument(
        "--frame-step", type=int, help="DICOM multi-frame: every k-th frame (default: the middle frame)"
    )
    volume.add_argument("--plane", choices=["axial", "coronal", "sagittal"], default="axial")
    volume.add_argument(
        "--slices", type=int, default=1, help="volumes: N evenly spaced slices (default 1, the middle)"
    )
    volume.add_argument(
        "--timepoint", type=int, default=0, help="4D volumes: the timepoint to use (default 0)"
    )
    add_image_options(cls)
    cls.set_defaults(func=run_classification, accepts_pipeline_options=True)


def default_cache_dir() -> str:
    import os
    from pathlib import Path

    root = os.environ.get("MEDCORPUS_CACHE") or str(Path.home() / ".cache" / "medcorpus")
    return f"{root.rstrip('/')}/captions"


def run_classification(args: argparse.Namespace, beam_args: list[str]) -> int:
    from connectors.dataset_card import load_card
    from connectors.medical_image import VolumePolicy
    from connectors.splits import SplitRatios
    from models.llm import BackendConfig, SamplingOptions
    from pipelines import classification_ingest
    from pipelines.runner import finish, run_corpus_pipeline

    name = args.name or (
        load_card(args.card).name if args.card else args.dataset.rstrip("/").rsplit("/", 1)[-1].split(".")[0]
    )
    cache = None if (args.cache_dir or "").lower() == "none" else (args.cache_dir or default_cache_dir())
    if args.llm == "openai":
        from models.llm.openai_backend import probe_server

        if not args.server_url or not args.model:
            raise UsageError("--llm openai needs --server-url and --model")
        probe_server(args.server_url, args.model)
    llm = BackendConfig(
        kind=args.llm,
        model=args.model,
        base_url=args.server_url,
        sampling=SamplingOptions(temperature=args.temperature, max_tokens=args.max_tokens),
        cache_dir=cache,
        concurrency=args.concurrency,
    )
    options = classification_ingest.ClassificationIngestOptions(
        dataset=args.dataset,
        out=args.out,
        name=name,
        card=args.card,
        llm=llm,
        captions_per_class=args.captions_per_class,
        caption_mode=args.caption_mode,
        label_column=args.label_column,
        image_column=args.image_column,
        dataset_root=args.dataset_root,
        image=image_options(args),
        volume=VolumePolicy(
            frame_step=args.frame_step, plane=args.plane, n_slices=args.slices, timepoint=args.timepoint
        ),
        splits=SplitRatios.parse(args.splits),
    )
    manifest = run_corpus_pipeline(
        lambda p, folder: classification_ingest.build(p, dataclasses.replace(options, out=folder)),
        args.out,
        classification_ingest.run_info(options),
        beam_args,
        final_stage="pairs" if args.caption_mode == "list" else None,
        title=f"{name}: image-caption pairs from a classification dataset",
        overwrite=args.overwrite,
        inputs=[args.dataset, *([args.dataset_root] if args.dataset_root else [])],
    )
    return finish(manifest)


def run_pmc(args: argparse.Namespace, beam_args: list[str]) -> int:
    from connectors.pmc_source import read_pmcid_file
    from connectors.splits import SplitRatios
    from pipelines import pmc_ingest
    from pipelines.runner import finish, run_corpus_pipeline

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
        lambda p, folder: pmc_ingest.build(p, dataclasses.replace(options, out=folder)),
        args.out,
        run,
        beam_args,
        final_stage="figures",
        title="PMC Open Access figure-caption pairs",
        overwrite=args.overwrite,
        inputs=[args.source],
    )
    return finish(manifest)
