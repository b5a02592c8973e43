"""`medcorpus dedupe`: exact and near-duplicate removal, and decontamination against evaluation sets, on Beam.

The shape (SemDeDup / NeMo Curator's semantic dedupe, plus exact and perceptual-hash levels):

1. `Signatures`: each input shard is read once, projected to the columns dedupe needs, and every pair
   becomes a small `Signature` (pixel hash, pHash, caption key, embeddings; embeddings cached beside the
   corpus). Image bytes never leave this step.
2. `Decontaminate` (with `--against`): evaluation images become signatures too; they form one small index
   that every worker loads, and each pair that matches it is removed as `eval_overlap`.
3. One composite transform per level turns signatures into duplicate edges, with a shuffle keyed so that
   each worker sees one group at a time: the pixel hash or caption key (exact levels), a pHash chunk
   (pigeonhole, `curation.dedupe.hamming`), a k-means cluster (embeddings, `curation.dedupe.dense`).
4. `Resolve`: the edges (their number grows with the duplicates, not the corpus) become connected
   components and removals on one worker (`curation.dedupe.groups`).
5. `Decide`: the input rows are read again and each is written or rejected, the removals being a side
   input looked up by id; the shard writer is the only step that moves whole rows.

Stage `dedupe` counts every input row: out, or rejected as `duplicate`, `eval_overlap`, `id_duplicate`
(an id an earlier input row already had) or `id_missing`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import apache_beam as beam
import numpy as np
import pyarrow as pa

from connectors.corpus import (
    REJECTS_DIR,
    RunInfo,
    corpus_rows,
    corpus_schema,
    data_shards,
    iter_rows,
    shard_columns,
    total_rows,
)
from connectors.embedding_store import cache_url, read_cached, write_cached
from curation.dedupe.dense import assign_clusters, cluster_count, similar_pairs, train_centroids
from curation.dedupe.groups import Edge, Node, Removal, eval_removal, resolve_duplicates
from curation.dedupe.hamming import band_keys, hamming_pairs
from curation.dedupe.signatures import Signature, caption_key, phash
from models.embedders import EmbedderSpec, caption_embedder_spec, image_embedder_spec, load_embedder
from pipelines.accounting import REJECTS, Progress, count, reject
from pipelines.corpus_output import WriteCorpus, row_format
from schemas import RejectRecord, schema_for

log = logging.getLogger("medcorpus")

STAGE = "dedupe"
EVAL_STAGE = "against"
# Columns a signature is made from; a foreign corpus may lack any but `id`.
SIGNATURE_COLUMNS = ["id", "image", "image_sha256", "caption", "license_group", "width", "height", "source"]


@dataclass
class DedupeOptions:
    inputs: list[str]
    out: str
    against: list[str] = field(default_factory=list)
    exact_image: bool = True
    exact_caption: bool = True
    caption_min_words: int = 10
    phash_radius: int | None = 4  # None: the pHash level is off
    image_embedder: str | None = None  # an open_clip model folder; None: the level is off
    image_threshold: float = 0.95
    caption_embedder: str | None = None  # a sentence-transformers folder; None: the level is off
    caption_threshold: float = 0.97
    clusters: int | None = None  # None: about `cluster_size` vectors per cluster
    cluster_size: int = 5_000
    cluster_margin: float = 0.02
    clusters_per_vector: int = 3
    kmeans_sample: int = 100_000
    batch_size: int = 64
    seed: int = 0

    def levels(self) -> list[str]:
        on = {
            "exact_image": self.exact_image,
            "exact_caption": self.exact_caption,
            "phash": self.phash_radius is not None,
            "image_embedding": self.image_embedder is not None,
            "caption_embedding": self.caption_embedder is not None,
        }
        return [level for level, enabled in on.items() if enabled]


@dataclass(frozen=True)
class Embedders:
    """The embedders of a run, resolved (and their weights hashed) once on the launching machine."""

    image: EmbedderSpec | None
    caption: EmbedderSpec | None

    @classmethod
    def of(cls, options: DedupeOptions) -> Embedders:
        return cls(
            image_embedder_spec(options.image_embedder) if options.image_embedder else None,
            caption_embedder_spec(options.caption_embedder) if options.caption_embedder else None,
        )

    def load(self) -> tuple:
        return tuple(load_embedder(spec) if spec else None for spec in (self.image, self.caption))


def output_schema(options: DedupeOptions) -> pa.Schema:
    schemas = [corpus_schema(corpus) for corpus in options.inputs]
    try:
        merged = pa.unify_schemas(schemas)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"the --in corpora have conflicting column types: {exc}") from None
    return schema_for(list(merged))


def input_shards(options: DedupeOptions) -> list[tuple[int, int, str, str]]:
    """(origin, shard number, corpus, shard URL) of every data shard, inputs in the order given."""
    out = []
    for origin, corpus in enumerate(options.inputs):
        out += [(origin, k, corpus, url) for k, url in enumerate(data_shards(corpus))]
    return out


# ---------------------------------------------------------------------------------------- signatures


def _node(row: dict) -> Node:
    return Node(
        id=row["id"],
        license_group=row.get("license_group"),
        pixels=int(row.get("width") or 0) * int(row.get("height") or 0),
        caption_chars=len(row.get("caption") or ""),
    )


def _image_bytes(row: dict) -> bytes | None:
    image = row.get("image")
    return image.get("bytes") if isinstance(image, dict) else None


def _phash_or_none(data: bytes | None, what: str) -> int | None:
    if not data:
        return None
    try:
        return phash(data)
    except (OSError, ValueError) as exc:  # Pillow's UnidentifiedImageError is an OSError
        log.warning("%s: image does not decode, so it has no perceptual hash (%s)", what, exc)
        return None


def _caption_text_key(caption: str) -> str:
    return hashlib.sha256(caption.encode()).hexdigest()[:32]


class ComputeSignatures(beam.DoFn):
    """One input shard -> the signatures of its rows (origin, (shard, row) position, signature).

    Embedders load once per worker; vectors come from the shard's cache file when its id and content
    key match, and the ones computed here are written back to it."""

    def __init__(self, options: DedupeOptions, embedders: Embedders):
        self.options = options
        self.embedders = embedders

    def setup(self):
        self.image_model, self.caption_model = self.embedders.load()
        self.progress = Progress("pairs signed", total_rows(self.options.inputs))

    def process(self, shard: tuple[int, int, str, str]) -> Iterator[tuple[tuple[int, int, int], Signature]]:
        origin, number, corpus, url = shard
        columns = [c for c in SIGNATURE_COLUMNS if c in shard_columns(url)]
        # Positions count every row, id or not, as `Decide` does when it reads the shard again.
        positions, rows = [], []
        for k, row in enumerate(iter_rows(url, columns)):
            if row.get("id"):
                positions.append(k)
                rows.append(row)
        options = self.options
        image_vectors = self._vectors(
            corpus,
            url,
            rows,
            self.image_model,
            self.embedders.image,
            key=lambda r: r.get("image_sha256") or (hashlib.sha256(_image_bytes(r) or b"").hexdigest()),
            content=lambda r: _image_bytes(r),
        )
        caption_vectors = self._vectors(
            corpus,
            url,
            rows,
            self.caption_model,
            self.embedders.caption,
            key=lambda r: _caption_text_key(r.get("caption") or ""),
            content=lambda r: r.get("caption") or None,
        )
        for k, row in zip(positions, rows, strict=True):
            classification = row.get("source") == "classification"
            yield (
                (origin, number, k),
                Signature(
                    node=_node(row),
                    origin=origin,
                    image_sha256=row.get("image_sha256") if options.exact_image else None,
                    phash=_phash_or_none(_image_bytes(row), row["id"])
                    if options.phash_radius is not None
                    else None,
                    # Classification captions describe a label set, not an image: shared by design, never evidence.
                    caption_key=None
                    if classification or not options.exact_caption
                    else caption_key(row.get("caption"), options.caption_min_words),
                    image_vector=image_vectors.get(row["id"]),
                    caption_vector=None if classification else caption_vectors.get(row["id"]),
                ),
            )
        self.progress.tick(len(rows))

    def _vectors(self, corpus, url, rows, model, spec, key, content) -> dict[str, np.ndarray]:
        if model is None:
            return {}
        cache = cache_url(corpus, spec.identity, url)
        cached = read_cached(cache)
        entries, missing = {}, []
        for row in rows:
            if content(row) is None:
                continue
            hit = cached.get(row["id"])
            if hit is not None and hit[0] == key(row):
                entries[row["id"]] = hit
            else:
                missing.append(row)
        if missing:
            vectors = model.embed([content(r) for r in missing])
            for row, vector in zip(missing, vectors, strict=True):
                entries[row["id"]] = (key(row), vector)
            write_cached(cache, spec.identity, entries)
        return {i: v for i, (_, v) in entries.items()}


class Signatures(beam.PTransform):
    """Every input row's signature, and the ids that occur at more than one (input, shard, row) position
    with the first such position. Only the first holder of an id gets a signature; the others are
    rejected as `id_duplicate` when the rows are written. Only ids and positions are shuffled for this."""

    def __init__(self, options: DedupeOptions, embedders: Embedders):
        super().__init__()
        self.options, self.embedders = options, embedders

    def expand(self, pipeline):
        signed = (
            pipeline
            | "Shards" >> beam.Create(input_shards(self.options))
            | "Spread shards" >> beam.Reshuffle()
            | "Sign" >> beam.ParDo(ComputeSignatures(self.options, self.embedders))
        )
        collisions = (
            signed
            | "IdPosition" >> beam.Map(lambda item: (item[1].node.id, item[0]))
            | "GroupById" >> beam.GroupByKey()
            | "Collisions" >> beam.FlatMap(lambda kv: [(kv[0], min(kv[1]))] if len(list(kv[1])) > 1 else [])
        )
        unique = signed | "KeepFirstHolder" >> beam.FlatMap(
            lambda item, first: [item[1]] if first.get(item[1].node.id, item[0]) == item[0] else [],
            first=beam.pvalue.AsDict(collisions),
        )
        return unique, collisions


# ----------------------------------------------------------------------------------- evaluation sets


def eval_images(spec: str) -> Iterator[tuple[str, bytes]]:
    """(eval item id, (stored image bytes, pixel hash) or a sample to decode) of an evaluation set: a medcorpus (or any Parquet) corpus with
    an `image` column, or anything `ingest classification` reads (image folder, manifest, HF dataset)."""
    name = spec.rstrip("/").rsplit("/", 1)[-1]
    if data_shards_or_none(spec):
        columns = [c for c in ("id", "image", "image_sha256") if c in shard_columns(data_shards(spec)[0])]
        for row in corpus_rows(spec, columns=columns):
            if _image_bytes(row):
                yield f"eval/{name}/{row['id']}", (_image_bytes(row), row.get("image_sha256"))
        return
    from connectors.classification import ClassificationSample, open_classification_dataset

    for item in open_classification_dataset(spec):
        if isinstance(item, ClassificationSample):
            yield f"eval/{name}/{item.sample_id}", item  # decoded in `SignEvalImages`, in parallel


def data_shards_or_none(spec: str) -> list[str]:
    try:
        shards = data_shards(spec)
        return shards if shards and "image" in shard_columns(shards[0]) else []
    except (OSError, ValueError):
        return []


class SignEvalImages(beam.DoFn):
    """Evaluation images -> signatures: normalised as ingest does, hashed, embedded (the image embedder)."""

    def __init__(self, embedders: Embedders):
        self.embedders = embedders

    def setup(self):
        self.image_model, _ = Embedders(self.embedders.image, None).load()

    def process(self, batch: list[tuple[str, object]]):
        from connectors.classification import read_image_bytes
        from connectors.images import ImageError
        from connectors.medical_image import load_medical_image

        items: list[tuple[str, bytes, str | None]] = []
        for eval_id, source in batch:
            count(EVAL_STAGE, "in")
            if isinstance(source, tuple):  # an image already stored in a corpus, with its pixel hash
                items.append((eval_id, *source))
                continue
            try:
                images = load_medical_image(read_image_bytes(source), source.image_name)
            except ImageError as exc:
                log.warning("evaluation item %s is unreadable and cannot be matched: %s", eval_id, exc)
                count(EVAL_STAGE, f"removed.{exc.reason}")
                continue
            for k, image in enumerate(images):
                item_id = f"{eval_id}#{k}" if len(images) > 1 else eval_id
                items.append((item_id, image.image.data, image.image.sha256))
        vectors = (
            self.image_model.embed([data for _, data, _ in items]) if self.image_model and items else None
        )
        for k, (eval_id, data, sha) in enumerate(items):
            count(EVAL_STAGE, "out")
            yield Signature(
                node=Node(eval_id),
                origin=-1,
                image_sha256=sha,
                phash=_phash_or_none(data, eval_id),
                image_vector=None if vectors is None else vectors[k],
            )


def eval_signatures(pipeline, options: DedupeOptions, embedders: Embedders):
    return (
        pipeline
        | "EvalSets" >> beam.Create(list(options.against))
        | "EvalImages" >> beam.FlatMap(eval_images)
        | "Spread eval images" >> beam.Reshuffle()
        | "BatchEval" >> beam.BatchElements(min_batch_size=8, max_batch_size=options.batch_size)
        | "SignEval" >> beam.ParDo(SignEvalImages(embedders))
    )


class MatchEval(beam.DoFn):
    """Pairs that show an evaluation image go to the `eval_overlap` output; the others pass on."""

    def __init__(self, options: DedupeOptions):
        self.options = options
        self.index = None

    def process(self, batch: list[Signature], evals: list[Signature]):
        if self.index is None:  # side inputs are only visible in process(); built once per worker
            from curation.dedupe.decontaminate import EvalIndex

            self.index = EvalIndex(
                evals,
                self.options.phash_radius,
                self.options.image_threshold if self.options.image_embedder else None,
            )
        for signature, matches in zip(batch, self.index.matches(batch), strict=True):
            removal = eval_removal(signature.node.id, matches)
            if removal is None:
                yield signature
            else:
                yield beam.pvalue.TaggedOutput("eval_overlap", removal)


# ------------------------------------------------------------------------------------------- levels


def _star_edges(level: str):
    """A group of identical keys: every member linked to the first (by id)."""

    def edges(item: tuple[object, list[Node]]) -> Iterator[Edge]:
        nodes = sorted(set(item[1]), key=lambda n: n.id)
        for other in nodes[1:]:
            yield Edge(nodes[0], other, level, 1.0)

    return edges


def _phash_edges(radius: int):
    def edges(item: tuple[object, list[tuple[int, Node]]]) -> Iterator[Edge]:
        members = sorted(set(item[1]), key=lambda m: m[1].id)
        if len(members) < 2:
            return
        codes = np.array([code for code, _ in members], dtype=np.uint64)
        for i, j, d in zip(*hamming_pairs(codes, radius), strict=True):
            yield Edge(members[i][1], members[j][1], "phash", 1 - int(d) / 64)

    return edges


class ExactLevel(beam.PTransform):
    def __init__(self, level: str, key_of):
        super().__init__()
        self.level, self.key_of = level, key_of

    def expand(self, signatures):
        key_of = self.key_of
        return (
            signatures
            | "Key" >> beam.FlatMap(lambda s: [(key_of(s), s.node)] if key_of(s) else [])
            | "Group" >> beam.GroupByKey()
            | "Edges" >> beam.FlatMap(_star_edges(self.level))
        )


class PhashLevel(beam.PTransform):
    def __init__(self, radius: int):
        super().__init__()
        self.radius = radius

    def expand(self, signatures):
        radius = self.radius
        return (
            signatures
            | "Bands"
            >> beam.FlatMap(
                lambda s: (
                    [(band, (s.phash, s.node)) for band in band_keys(s.phash, radius)]
                    if s.phash is not None
                    else []
                )
            )
            | "GroupByBand" >> beam.GroupByKey()
            | "Edges" >> beam.FlatMap(_phash_edges(radius))
        )


def _id_rank(item_id: str) -> bytes:
    return hashlib.sha256(item_id.encode()).digest()[:8]


class DenseLevel(beam.PTransform):
    """k-means on a deterministic sample, multi-assignment near boundaries, exact search per cluster."""

    def __init__(self, level: str, vector_of, threshold: float, options: DedupeOptions):
        super().__init__()
        self.level, self.vector_of, self.threshold, self.options = level, vector_of, threshold, options

    def expand(self, signatures):
        vector_of, options, level, threshold = self.vector_of, self.options, self.level, self.threshold
        vectors = signatures | "Vectors" >> beam.FlatMap(
            lambda s: [(s.node, vector_of(s))] if vector_of(s) is not None else []
        )
        total = vectors | "Count" >> beam.combiners.Count.Globally()
        sample = vectors | "Sample" >> beam.combiners.Top.Smallest(
            options.kmeans_sample, key=lambda item: _id_rank(item[0].id)
        )

        def centroids(sample: list, total: int) -> np.ndarray:
            sample = sorted(sample, key=lambda item: item[0].id)
            k = options.clusters or cluster_count(total, len(sample), options.cluster_size)
            k = max(1, min(k, len(sample)))
            log.info("%s: %d vectors in %d cluster(s)", level, total, k)
            return (
                train_centroids(np.stack([v for _, v in sample]), k, options.seed)
                if sample
                else np.zeros((1, 1))
            )

        trained = sample | "Centroids" >> beam.Map(centroids, total=beam.pvalue.AsSingleton(total))

        def assign(batch: list, centroids: np.ndarray):
            clusters = assign_clusters(
                np.stack([v for _, v in batch]),
                centroids,
                options.cluster_margin,
                options.clusters_per_vector,
            )
            for (node, vector), ids in zip(batch, clusters, strict=True):
                for cluster in ids:
                    yield cluster, (node, vector)

        def edges(item) -> Iterator[Edge]:
            members = sorted(item[1], key=lambda m: m[0].id)
            if len(members) < 2:
                return
            i, j, sims = similar_pairs(np.stack([v for _, v in members]), threshold)
            for a, b, s in zip(i, j, sims, strict=True):
                yield Edge(members[a][0], members[b][0], level, float(s))

        return (
            vectors
            | "Batch" >> beam.BatchElements(min_batch_size=64, max_batch_size=4096)
            | "Assign" >> beam.FlatMap(assign, centroids=beam.pvalue.AsSingleton(trained))
            | "GroupByCluster" >> beam.GroupByKey()
            | "Edges" >> beam.FlatMap(edges)
        )


def level_edges(signatures, options: DedupeOptions) -> list:
    out = []
    if options.exact_image:
        out.append(signatures | "ExactImage" >> ExactLevel("exact_image", lambda s: s.image_sha256))
    if options.exact_caption:
        out.append(signatures | "ExactCaption" >> ExactLevel("exact_caption", lambda s: s.caption_key))
    if options.phash_radius is not None:
        out.append(signatures | "Phash" >> PhashLevel(options.phash_radius))
    if options.image_embedder:
        out.append(
            signatures
            | "ImageEmbedding"
            >> DenseLevel("image_embedding", lambda s: s.image_vector, options.image_threshold, options)
        )
    if options.caption_embedder:
        out.append(
            signatures
            | "CaptionEmbedding"
            >> DenseLevel("caption_embedding", lambda s: s.caption_vector, options.caption_threshold, options)
        )
    return out


# -------------------------------------------------------------------------------------------- build


class Decide(beam.DoFn):
    """Each input row: written, or rejected with the removal's detail."""

    def process(self, shard: tuple[int, int, str, str], removals: dict, first: dict):
        origin, number, corpus, url = shard
        for k, row in enumerate(iter_rows(url)):
            count(STAGE, "in")
            row_id = row.get("id")
            if not row_id:
                yield reject(
                    RejectRecord(
                        id=f"{corpus}#{number}:{k}", stage=STAGE, reason="id_missing", source_uri=url
                    )
                )
                continue
            if first.get(row_id, (origin, number, k)) != (origin, number, k):
                yield reject(
                    RejectRecord(
                        id=row_id,
                        stage=STAGE,
                        reason="id_duplicate",
                        detail=f"an earlier input row has this id; this one is row {k} of {url}",
                        source=row.get("source"),
                        source_uri=url,
                    )
                )
                continue
            removal: Removal | None = removals.get(row_id)
            if removal is None:
                count(STAGE, "out")
                yield row
            else:
                yield reject(
                    RejectRecord(
                        id=row_id,
                        stage=STAGE,
                        reason=removal.reason,
                        detail=removal.detail(),
                        source=row.get("source"),
                        source_uri=row.get("source_uri"),
                    )
                )


def build(pipeline: beam.Pipeline, options: DedupeOptions, schema: pa.Schema, embedders: Embedders) -> None:
    signatures, collisions = pipeline | "Signatures" >> Signatures(options, embedders)
    removals = []
    if options.against:
        evals = eval_signatures(pipeline, options, embedders)
        matched = (
            signatures
            | "BatchPairs" >> beam.BatchElements(min_batch_size=64, max_batch_size=4096)
            | "MatchEval"
            >> beam.ParDo(MatchEval(options), evals=beam.pvalue.AsList(evals)).with_outputs(
                "eval_overlap", main="rest"
            )
        )
        signatures = matched.rest
        removals.append(matched.eval_overlap)
    edges = level_edges(signatures, options)
    if edges:
        removals.append(
            tuple(edges)
            | "AllEdges" >> beam.Flatten()
            | "EdgeList" >> beam.combiners.ToList()
            | "Resolve" >> beam.FlatMap(resolve_duplicates)
        )
    if not removals:
        removals.append(pipeline | "NoRemovals" >> beam.Create([]))
    by_id = tuple(removals) | "Removals" >> beam.Flatten() | "RemovalById" >> beam.Map(lambda r: (r.id, r))
    decided = (
        pipeline
        | "ShardsAgain" >> beam.Create(input_shards(options))
        | "Spread shards again" >> beam.Reshuffle()
        | "Decide"
        >> beam.ParDo(
            Decide(), removals=beam.pvalue.AsDict(by_id), first=beam.pvalue.AsDict(collisions)
        ).with_outputs(REJECTS, main="rows")
    )
    _ = (decided.rows, decided[REJECTS]) | "WriteCorpus" >> WriteCorpus(options.out, row_format(schema))


# ----------------------------------------------------------------------------------------- manifest


def removal_summary(out: str) -> dict:
    """What dedupe removed, by reason and level, read back from the written reject rows."""
    levels: dict[str, Counter] = {"duplicate": Counter(), "eval_overlap": Counter()}
    for row in corpus_rows(out, REJECTS_DIR, columns=["stage", "reason", "detail"]):
        if row["stage"] == STAGE and row["reason"] in levels:
            levels[row["reason"]][json.loads(row["detail"])["level"]] += 1
    return {"dedupe": {reason: dict(sorted(c.items())) for reason, c in levels.items()}}


def run_info(options: DedupeOptions, embedders: Embedders) -> RunInfo:
    return RunInfo(
        pipeline="dedupe",
        inputs={"corpora": list(options.inputs), "against": list(options.against)},
        options=dataclasses.asdict(options) | {"levels": options.levels()},
        extra={
            "embedders": {
                kind: dataclasses.asdict(spec)
                for kind, spec in (("image", embedders.image), ("caption", embedders.caption))
                if spec is not None
            }
        },
    )
