"""Steps that change or drop rows of a corpus without moving whole rows through shuffles.

The shards are read projected (`ReadProjected`: the id and the columns the step needs, keyed by shard),
so only those small records travel while the step works. `MergeIntoShards` groups the results by shard
and reads each shard's full rows once, applying the changes: image bytes move only into the shard
writer's own grouping, never through the step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam

from connectors.corpus import iter_rows, shard_columns

Changes = dict[str, Any]


def read_projected(url: str, columns: Iterable[str]) -> Iterator[tuple[str, dict]]:
    """(shard, row) for every row of the shard, with only `columns` (those the shard has)."""
    present = [c for c in dict.fromkeys(["id", *columns]) if c in shard_columns(url)]
    for row in iter_rows(url, present):
        yield url, row


class MergeIntoShards(beam.PTransform):
    """(shard, (row id, changes)) -> the shard's full rows with the changes applied. A row with no entry
    is left out: the step rejected or removed it (and counted it)."""

    def expand(self, results):
        return results | "GroupByShard" >> beam.GroupByKey() | "Merge" >> beam.FlatMap(_merge)


def _merge(item: tuple[str, Iterable[tuple[str, Changes]]]) -> Iterator[dict]:
    url, entries = item
    changes = dict(entries)
    for row in iter_rows(url):
        found = changes.get(row.get("id"))
        if found is not None:
            yield {**row, **found}
