"""What `tag` and `balance` move through their shuffles: ids and the columns they read, then one merge.

A synthetic corpus of N rows (random image bytes of a real figure's size, 1-8 concepts a row) in Parquet
shards. Ours (pipelines/row_merge.py, what tag and balance do): read each shard projected to id +
concepts, shuffle those small records (`Reshuffle`, as balance spreads its pairs), then group the
results by shard and read each shard's full rows once to merge them (`MergeIntoShards`). Peer (what they
did before): read whole rows, image bytes included, and shuffle those. Both on Beam's local runner,
pinned to one core; the output is counted, and the bytes that entered each shuffle are measured with
Beam's own pickling coder.

    .venv/bin/python benchmarks/bench_row_shuffle.py [--rows 5000] [--image-kb 150] [--shards 8]
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import tempfile
import time
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from connectors.corpus import iter_rows, write_table
from pipelines.row_merge import MergeIntoShards, read_projected
from schemas import CONCEPT_TYPE


def make_corpus(folder: Path, rows: int, image_bytes: int, shards: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    per_shard = -(-rows // shards)
    for s in range(shards):
        ids = [f"pmc/PMC{9_000_000 + i}/F1" for i in range(s * per_shard, min(rows, (s + 1) * per_shard))]
        concepts = [
            [
                {
                    "cui": f"C{int(c):07d}",
                    "name": "x",
                    "semtypes": ["T047"],
                    "start": 0,
                    "end": 1,
                    "score": 1.0,
                }
                for c in rng.zipf(1.3, int(rng.integers(1, 9))) % 50_000
            ]
            for _ in ids
        ]
        table = pa.table(
            {
                "id": ids,
                "image": [{"bytes": rng.bytes(image_bytes), "path": "f.jpg"} for _ in ids],
                "caption": ["A caption of about the usual length, naming a finding and a modality. " * 3]
                * len(ids),
                "concepts": pa.array(concepts, type=pa.list_(CONCEPT_TYPE)),
            }
        )
        path = str(folder / f"train-{s:05d}-of-{shards:05d}.parquet")
        write_table(table, path)
        paths.append(path)
    return paths


def _measure(label: str):
    counter = Metrics.distribution("bench", f"{label}_bytes")

    def record(element):
        counter.update(len(pickle.dumps(element, protocol=4)))
        return element

    return record


def ours(pipeline: beam.Pipeline, shards: list[str], measure) -> beam.PCollection:
    return (
        pipeline
        | beam.Create(shards)
        | "ReadProjected" >> beam.FlatMap(read_projected, columns=["concepts"])
        | "Small" >> beam.Map(lambda item: (item[0], (item[1]["id"], {"n": len(item[1]["concepts"] or [])})))
        | "Measure" >> beam.Map(measure)
        | "Spread" >> beam.Reshuffle()
        | "Merge" >> MergeIntoShards()
    )


def peer(pipeline: beam.Pipeline, shards: list[str], measure) -> beam.PCollection:
    return (
        pipeline
        | beam.Create(shards)
        | "ReadWhole" >> beam.FlatMap(iter_rows)
        | "Changes" >> beam.Map(lambda row: {**row, "n": len(row["concepts"] or [])})
        | "Measure" >> beam.Map(measure)
        | "Spread" >> beam.Reshuffle()
    )


def run(build, shards: list[str], measure: bool) -> tuple[float, int, int]:
    """(seconds, rows out, bytes into the shuffle). Measuring pickles every element, so timed runs don't."""
    started = time.perf_counter()
    pipeline = beam.Pipeline(runner=FnApiRunner())
    _ = (
        build(pipeline, shards, _measure("shuffled") if measure else (lambda element: element))
        | beam.combiners.Count.Globally()
        | beam.Map(lambda n: Metrics.counter("bench", "rows").inc(n))
    )
    result = pipeline.run()
    result.wait_until_finish()
    seconds = time.perf_counter() - started
    metrics = result.metrics().query(MetricsFilter().with_namespace("bench"))
    rows = sum(c.committed for c in metrics["counters"])
    shuffled = sum(d.committed.sum for d in metrics["distributions"])
    return seconds, rows, shuffled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--image-kb", type=int, default=150)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})  # one core
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        shards = make_corpus(Path(tmp), args.rows, args.image_kb * 1000, args.shards)
        size = sum(os.path.getsize(p) for p in shards)
        print(
            f"{args.rows:,} rows, {args.image_kb} kB images, {args.shards} shards, {size / 1e9:.2f} GB of Parquet"
        )
        shuffled_by: dict[str, int] = {}
        for repeat in range(args.repeats):
            for name, build in (
                ("peer: whole rows through the shuffle", peer),
                ("ours: ids + columns, merged per shard", ours),
            ):
                seconds, rows, _ = run(build, shards, measure=False)
                shuffled = run(build, shards, measure=True)[2] if repeat == 0 else shuffled_by[name]
                shuffled_by[name] = shuffled
                print(
                    f"  run {repeat + 1} {name:40} {seconds:6.1f} s, {rows:,} rows out, "
                    f"{shuffled / 1e6:8.1f} MB into the shuffle ({shuffled / max(rows, 1):,.0f} B a row)"
                )


if __name__ == "__main__":
    main()
