"""`medcorpus tag`: UMLS concepts and a modality label for every caption of a corpus, on Beam.

Stage `tag`: every row of the input corpus is tagged and written (rows without an id are rejected).
The input may be any Parquet corpus with `id` and `caption`; its other columns are kept as they are.
Classification-derived rows keep the modality their dataset card gave them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import apache_beam as beam
import pyarrow as pa

from connectors import fs
from connectors.corpus import RunInfo, corpus_schema, data_shards, read_manifest, total_rows
from curation.modality import is_compound, label_modality
from pipelines.accounting import REJECTS, Progress, count, reject
from pipelines.corpus_output import WriteCorpus, row_format
from pipelines.row_merge import MergeIntoShards, read_projected
from schemas import RejectRecord, schema_with

TAG_COLUMNS = ["concepts", "modality", "modality_confidence", "compound"]
# What tagging reads: only these travel through the pipeline's shuffles, never the images.
TAG_INPUT = ["caption", "source", "modality"]


@dataclass
class TagOptions:
    input: str
    out: str
    kb: str | None = None  # None: the bundled sample KB
    semtypes: list[str] | None = None  # None: the tagger's default groups
    exclude_semtypes: list[str] = field(default_factory=list)
    threshold: float = 0.8
    batch_size: int = 256


def output_schema(options: TagOptions) -> pa.Schema:
    return schema_with(corpus_schema(options.input, required=("id", "caption")), TAG_COLUMNS)


def tagger_for(options: TagOptions):
    from curation.concepts import ConceptTagger, default_kb_dir
    from curation.concepts.semtypes import DEFAULT_SEMTYPE_GROUPS

    return ConceptTagger(
        options.kb or default_kb_dir(),
        semtypes=options.semtypes if options.semtypes is not None else DEFAULT_SEMTYPE_GROUPS,
        exclude_semtypes=options.exclude_semtypes,
        threshold=options.threshold,
        batch_size=options.batch_size,
    )


def tag_rows(tagger, rows: list[dict]) -> list[dict]:
    """Rows with concepts, modality (unless a dataset card set it) and the compound-figure flag."""
    tagged = tagger.tag_batch([row.get("caption") or "" for row in rows])
    out = []
    for row, concepts in zip(rows, tagged, strict=True):
        row = dict(row)
        row["concepts"] = [dataclasses.asdict(c) for c in concepts]
        if not (row.get("source") == "classification" and row.get("modality")):
            row["modality"], row["modality_confidence"] = label_modality(row.get("caption") or "", concepts)
        row["compound"] = is_compound(row.get("caption") or "")
        out.append(row)
    return out


class TagCaptions(beam.DoFn):
    """Loads the knowledge base and linker once per worker; tags batches with `nlp.pipe`."""

    def __init__(self, options: TagOptions, total: int | None = None):
        self.options = options
        self.total = total

    def setup(self):
        self.tagger = tagger_for(self.options)
        self.progress = Progress("captions tagged", self.total)

    def process(self, batch: list[tuple[str, dict]]):
        """(shard, projected row) -> (shard, (id, the tag columns)); rows without an id are rejects."""
        count("tag", "in", len(batch))
        valid, shards = [], []
        for shard, row in batch:
            if row.get("id"):
                valid.append(row)
                shards.append(shard)
            else:
                yield reject(
                    RejectRecord(
                        id=f"row:{(row.get('caption') or '')[:40]}", stage="tag", reason="id_missing"
                    )
                )
        for shard, row in zip(shards, tag_rows(self.tagger, valid), strict=True):
            count("tag", "out")
            yield shard, (row["id"], {c: row[c] for c in TAG_COLUMNS if c in row})
        self.progress.tick(len(batch))


def build(pipeline: beam.Pipeline, options: TagOptions, schema: pa.Schema) -> None:
    tagged = (
        pipeline
        | "Shards" >> beam.Create(data_shards(options.input))
        | "ReadCaptions" >> beam.FlatMap(read_projected, columns=TAG_INPUT)
        | "Spread captions" >> beam.Reshuffle()
        | "Batch" >> beam.BatchElements(min_batch_size=32, max_batch_size=options.batch_size)
        | "Tag"
        >> beam.ParDo(TagCaptions(options, total_rows([options.input]))).with_outputs(REJECTS, main="rows")
    )
    rows = tagged.rows | "MergeTags" >> MergeIntoShards()
    _ = (rows, tagged[REJECTS]) | "WriteCorpus" >> WriteCorpus(options.out, row_format(schema))


def run_info(options: TagOptions) -> RunInfo:
    from curation.concepts import default_kb_dir, read_identity

    identity = read_identity(options.kb or default_kb_dir()).as_dict()
    try:
        upstream = read_manifest(options.input).get("pipeline")
    except (fs.FetchError, ValueError):  # a foreign corpus has no manifest
        upstream = None
    return RunInfo(
        pipeline="tag",
        inputs={"corpus": options.input, "corpus_pipeline": upstream},
        options=dataclasses.asdict(options),
        extra={"knowledge_base": identity},
    )
