"""`medcorpus balance`: a concept-balanced subset of a tagged corpus (curation.balance), on Beam.

Stage `balance`: every input row is kept or removed (`removed.over_concept_cap`); nothing is rejected.
The only global steps are the concept counts and the trim of the few concepts that sampling left over
the cap, both small.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from connectors import fs
from connectors.corpus import RunInfo, corpus_schema, data_shards, read_columns
from curation.balance import keep_pair, over_cap, trim_to_cap
from pipelines.accounting import count
from pipelines.corpus_output import WriteCorpus, row_format
from pipelines.row_merge import MergeIntoShards, read_projected
from schemas import schema_for
from schemas.errors import ReasonError


@dataclass
class BalanceOptions:
    input: str
    out: str
    max_per_concept: int
    seed: int = 0


def _cuis(row: dict) -> list[str]:
    return sorted({c["cui"] for c in row.get("concepts") or []})


def output_schema(options: BalanceOptions) -> pa.Schema:
    schema = corpus_schema(options.input, required=("id", "concepts"))
    if not any(_has_concepts(url) for url in data_shards(options.input)):
        # Balancing by concepts with none to count would keep every pair and look like it worked.
        raise ReasonError(
            "corpus_untagged",
            f"no row of {options.input} has concepts: run `medcorpus tag` on it first (or the tagger found none)",
        )
    return schema_for(list(schema))


def _has_concepts(url: str) -> bool:
    lengths = pc.list_value_length(read_columns(url, ["concepts"])["concepts"])
    return bool(pc.max(lengths).as_py() or 0)


def build(pipeline: beam.Pipeline, options: BalanceOptions, schema: pa.Schema) -> None:
    """Every step works on (shard, {id, concepts}); the kept ids are merged back into their shards' rows
    at the end, so image bytes never travel through the balancing."""
    cap, seed = options.max_per_concept, options.seed
    pairs = (
        pipeline
        | "Shards" >> beam.Create(data_shards(options.input))
        | "ReadConcepts" >> beam.FlatMap(read_projected, columns=["concepts"])
        | "IdAndConcepts" >> beam.Map(lambda item: (item[0], item[1]["id"], _cuis(item[1])))
        | "Spread pairs" >> beam.Reshuffle()
    )
    before = (
        pairs
        | "Concepts" >> beam.FlatMap(lambda p: p[2])
        | "CountBefore" >> beam.combiners.Count.PerElement()
        | "BeforeDict" >> beam.combiners.ToDict()
    )
    sampled = pairs | "Sample" >> beam.Filter(
        lambda p, counts: keep_pair(p[1], p[2], counts, cap, seed), counts=beam.pvalue.AsSingleton(before)
    )
    after = (
        sampled
        | "SampledConcepts" >> beam.FlatMap(lambda p: p[2])
        | "CountAfter" >> beam.combiners.Count.PerElement()
        | "AfterDict" >> beam.combiners.ToDict()
    )
    # Computed once, not per row: the set is small, the histogram it comes from may hold 50k concepts.
    heavy = after | "OverCap" >> beam.Map(lambda counts: frozenset(over_cap(counts, cap)))
    dropped = (
        sampled
        | "OverCapPairs"
        >> beam.FlatMap(
            lambda p, heavy: [(p[1], p[2])] if heavy.intersection(p[2]) else [],
            heavy=beam.pvalue.AsSingleton(heavy),
        )
        | "AllOverCap" >> beam.combiners.ToList()
        | "Trim"
        >> beam.Map(
            lambda kept, before, after: frozenset(trim_to_cap(kept, before, after, cap, seed)),
            before=beam.pvalue.AsSingleton(before),
            after=beam.pvalue.AsSingleton(after),
        )
    )

    def decide(pair: tuple[str, str, list[str]], before: dict, dropped: frozenset[str]):
        shard, pair_id, cuis = pair
        count("balance", "in")
        if keep_pair(pair_id, cuis, before, cap, seed) and pair_id not in dropped:
            count("balance", "out")
            yield shard, (pair_id, {})
        else:
            count("balance", "removed.over_concept_cap")

    final = (
        pairs
        | "FinalKept"
        >> beam.Filter(
            lambda p, before, dropped: keep_pair(p[1], p[2], before, cap, seed) and p[1] not in dropped,
            before=beam.pvalue.AsSingleton(before),
            dropped=beam.pvalue.AsSingleton(dropped),
        )
        | "KeptConcepts" >> beam.FlatMap(lambda p: p[2])
        | "CountKept" >> beam.combiners.Count.PerElement()
        | "KeptDict" >> beam.combiners.ToDict()
    )
    # The manifest's histograms come from the counts the workers already made: the launcher never reads
    # the shards of either corpus again.
    _ = (
        pipeline
        | "Once" >> beam.Create([None])
        | "WriteHistograms"
        >> beam.Map(
            lambda _, before, after: write_histograms(options.out, before, after),
            before=beam.pvalue.AsSingleton(before),
            after=beam.pvalue.AsSingleton(final),
        )
    )
    kept = (
        pairs
        | "Decide"
        >> beam.FlatMap(
            decide, before=beam.pvalue.AsSingleton(before), dropped=beam.pvalue.AsSingleton(dropped)
        )
        | "KeptRows" >> MergeIntoShards()
    )
    no_rejects = pipeline | "NoRejects" >> beam.Create([])
    _ = (kept, no_rejects) | "WriteCorpus" >> WriteCorpus(options.out, row_format(schema))


HISTOGRAMS = ".concept_histograms.json"  # in the staging folder, between the pipeline and the manifest


def write_histograms(folder: str, before: dict[str, int], after: dict[str, int]) -> None:
    def ranked(counts: dict[str, int]) -> dict[str, int]:
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    histogram = {
        "before": ranked(before),
        "after": ranked(after),
        "max_after": max(after.values(), default=0),
    }
    filesystem, path = fs.filesystem(fs.join(folder, HISTOGRAMS))
    filesystem.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with filesystem.open(path, "w") as f:
        json.dump({"concept_histogram": histogram}, f)


def histograms(folder: str) -> dict:
    """The concept histograms of the input and the subset, for the manifest (written by the pipeline)."""
    filesystem, path = fs.filesystem(fs.join(folder, HISTOGRAMS))
    with filesystem.open(path) as f:
        found = json.load(f)
    filesystem.rm(path)  # not part of the corpus
    return found


def run_info(options: BalanceOptions) -> RunInfo:
    return RunInfo(pipeline="balance", inputs={"corpus": options.input}, options=dataclasses.asdict(options))
