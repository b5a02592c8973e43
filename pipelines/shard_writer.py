"""Deterministic Parquet shards from a PCollection of records.

Beam's own file sinks assign records to shards by bundle, which differs from run to run. Here the
number of shards per split follows from the data's size, each record goes to the shard its id hashes
to, and a shard's rows are sorted by id: the same input writes the same files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import pyarrow as pa

from connectors.corpus import SHARD_BYTES, shard_count, shard_index, shard_path, write_table


@dataclass(frozen=True)
class RecordFormat:
    """How to write one kind of record: as a table, and where each one goes."""

    to_table: Callable[[Iterable[Any]], pa.Table]
    id_of: Callable[[Any], str]
    split_of: Callable[[Any], str]
    size_of: Callable[[Any], int]  # approximate bytes, for the number of shards


class WriteShards(beam.PTransform):
    """Writes records to `<out>/<folder>/<split>-NNNNN-of-NNNNN.parquet`; outputs (path, rows)."""

    def __init__(self, out: str, folder: str, fmt: RecordFormat, shard_bytes: int = SHARD_BYTES):
        super().__init__()
        self.out = out
        self.folder = folder
        self.fmt = fmt
        self.shard_bytes = shard_bytes

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        fmt, shard_bytes = self.fmt, self.shard_bytes
        split_of, size_of = fmt.split_of, fmt.size_of
        sizes = (
            records
            | "SizeBySplit" >> beam.Map(lambda r: (split_of(r), size_of(r)))
            | "SumSizes" >> beam.CombinePerKey(sum)
            | "SizesAsDict" >> beam.combiners.ToDict()
        )

        def key(record: Any, sizes: dict[str, int]) -> tuple[tuple[str, int, int], Any]:
            split = split_of(record)
            count = shard_count(sizes[split], shard_bytes)
            return (split, shard_index(fmt.id_of(record), count), count), record

        out, folder, to_table = self.out, self.folder, fmt.to_table

        def write(item: tuple[tuple[str, int, int], Iterable[Any]]) -> tuple[str, int]:
            (split, index, count), group = item
            table = to_table(group)
            path = shard_path(out, folder, split, index, count)
            write_table(table, path)
            return path, table.num_rows

        return (
            records
            | "KeyByShard" >> beam.Map(key, sizes=beam.pvalue.AsSingleton(sizes))
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.Map(write)
        )
