"""Which corpus rows a training or evaluation run reads, and how an epoch's rows are split across readers.

The unit of reading is a Parquet row group. Building the index opens each shard's footer, selects shards by
the split in their name (`data/<split>-NNNNN-of-NNNNN.parquet`), skips row groups whose column statistics
rule them out, and reads only the small filter columns of the rest (never image bytes) to list the rows
that pass. An epoch then shuffles the row groups, lays their kept rows end to end and cuts that sequence
into equal contiguous slots, one per (rank, loader worker): every row lands in exactly one slot, and slot
sizes differ by at most one row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors import fs
from connectors.corpus import data_shards
from schemas import check_schema_version
from schemas.errors import ReasonError
from schemas.records import SCHEMA_METADATA_KEY

_SHARD_NAME = re.compile(r"^(?P<split>[A-Za-z_]+)-\d+-of-\d+\.parquet$")
CONCEPT_CUI_COLUMN = "concepts.list.element.cui"


class CorpusReadError(ReasonError, ValueError):
    """A corpus a run cannot read (`corpus_empty`, `column_missing`)."""


@dataclass(frozen=True)
class RowFilter:
    """Rows to keep: each set field must match (a field left None keeps everything)."""

    splits: tuple[str, ...] | None = ("train",)
    license_groups: tuple[str, ...] | None = None
    modalities: tuple[str, ...] | None = None
    concepts: tuple[str, ...] | None = None  # keep rows tagged with any of these UMLS CUIs

    def equality_filters(self) -> dict[str, tuple[str, ...]]:
        wanted = {"split": self.splits, "license_group": self.license_groups, "modality": self.modalities}
        return {column: values for column, values in wanted.items() if values is not None}


@dataclass(frozen=True)
class RowGroupRows:
    shard: int
    row_group: int
    rows: np.ndarray  # int32 positions of kept rows inside the row group


@dataclass(frozen=True)
class Piece:
    """Rows `unit.rows[start:stop]` of one row group, a contiguous part of a slot's stream."""

    unit: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass
class CorpusIndex:
    shards: list[str]
    units: list[RowGroupRows]
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return sum(len(u.rows) for u in self.units)

    @classmethod
    def build(cls, corpus: str | Sequence[str], row_filter: RowFilter = RowFilter()) -> CorpusIndex:
        """The rows of one corpus, or of several read as one (PMC pairs mixed with classification pairs)."""
        corpora = [corpus] if isinstance(corpus, str) else list(corpus)
        shards = [url for c in corpora for url in data_shards(c)]
        if not shards:
            raise CorpusReadError(
                "corpus_empty", f"no Parquet shards under {', '.join(fs.join(c, 'data') for c in corpora)}"
            )
        stats = dict.fromkeys(
            ["shards", "shards_skipped_by_name", "row_groups", "row_groups_skipped_by_stats", "rows_seen"], 0
        )
        stats["rows_kept"] = 0
        kept_shards: list[str] = []
        units: list[RowGroupRows] = []
        for url in shards:
            stats["shards"] += 1
            name_split = _split_from_name(url)
            if (
                row_filter.splits is not None
                and name_split is not None
                and name_split not in row_filter.splits
            ):
                stats["shards_skipped_by_name"] += 1
                continue
            equality = row_filter.equality_filters()
            if name_split is not None:
                equality.pop("split", None)  # the name already decided it
            shard_units = list(_filter_shard(url, len(kept_shards), equality, row_filter.concepts, stats))
            if shard_units:
                kept_shards.append(url)
                units.extend(shard_units)
        index = cls(shards=kept_shards, units=units, stats=stats)
        stats["rows_kept"] = index.num_rows
        return index

    def slot_sizes(self, num_slots: int) -> np.ndarray:
        total = self.num_rows
        return np.array(
            [total // num_slots + (s < total % num_slots) for s in range(num_slots)], dtype=np.int64
        )

    def epoch_slot_pieces(
        self, num_slots: int, slot: int, seed: int, epoch: int, shuffle: bool
    ) -> list[Piece]:
        """The pieces of row groups that make up `slot`'s share of `epoch`, in reading order."""
        order = (
            np.random.default_rng([seed, epoch, 0x5EED]).permutation(len(self.units))
            if shuffle
            else np.arange(len(self.units))
        )
        lengths = np.array([len(self.units[i].rows) for i in order], dtype=np.int64)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        sizes = self.slot_sizes(num_slots)
        lo = int(sizes[:slot].sum())
        hi = lo + int(sizes[slot])
        pieces = []
        for k in np.nonzero((ends > lo) & (starts < hi))[0]:
            begin, end = max(lo, int(starts[k])), min(hi, int(ends[k]))
            pieces.append(Piece(int(order[k]), begin - int(starts[k]), end - int(starts[k])))
        return pieces


def check_corpus_shard(parquet: pq.ParquetFile, url: str, columns: Sequence[str]) -> None:
    """Refuse a medcorpus shard of another schema version, or a shard lacking a column this run needs.

    Parquet files without a medcorpus version (a foreign corpus) are read as long as the columns are there.
    """
    schema = parquet.schema_arrow
    if schema.metadata and SCHEMA_METADATA_KEY in schema.metadata:
        check_schema_version(schema, url)
    leaves = {parquet.schema.column(i).path for i in range(len(parquet.schema))}
    missing = [c for c in ("id", "caption", *columns) if c not in leaves]
    if "image.bytes" not in leaves:
        missing.append("image")
    if missing:
        raise CorpusReadError("column_missing", f"{url} has no column {', '.join(missing)}")


def _split_from_name(url: str) -> str | None:
    match = _SHARD_NAME.match(url.rsplit("/", 1)[-1])
    return match.group("split") if match else None


def _filter_shard(
    url: str,
    shard_index: int,
    equality: dict[str, tuple[str, ...]],
    concepts: tuple[str, ...] | None,
    stats: dict[str, int],
) -> Iterator[RowGroupRows]:
    filesystem, path = fs.filesystem(url)
    with filesystem.open(path, "rb") as f:
        parquet = pq.ParquetFile(f)
        check_corpus_shard(parquet, url, [*equality, *([CONCEPT_CUI_COLUMN] if concepts else [])])
        meta = parquet.metadata
        leaf_index = {parquet.schema.column(i).path: i for i in range(meta.num_columns)}
        for rg in range(meta.num_row_groups):
            n = meta.row_group(rg).num_rows
            stats["row_groups"] += 1
            stats["rows_seen"] += n
            to_read = []
            skip = False
            for column, allowed in equality.items():
                verdict = _stats_verdict(meta.row_group(rg).column(leaf_index[column]).statistics, allowed)
                if verdict == "none":
                    skip = True
                    break
                if verdict == "some":
                    to_read.append(column)
            if skip:
                stats["row_groups_skipped_by_stats"] += 1
                continue
            if concepts is not None:
                to_read.append(CONCEPT_CUI_COLUMN)
            if not to_read:
                yield RowGroupRows(shard_index, rg, np.arange(n, dtype=np.int32))
                continue
            table = parquet.read_row_group(rg, columns=to_read)
            keep = np.ones(n, dtype=bool)
            for column in to_read:
                if column == CONCEPT_CUI_COLUMN:
                    keep &= _rows_with_concepts(table.column("concepts"), concepts or (), n)
                else:
                    mask = pc.is_in(table.column(column), value_set=pa.array(equality[column], pa.string()))
                    keep &= mask.fill_null(False).to_numpy(zero_copy_only=False)
            rows = np.nonzero(keep)[0].astype(np.int32)
            if len(rows):
                yield RowGroupRows(shard_index, rg, rows)


def _stats_verdict(statistics: Any, allowed: Sequence[str]) -> str:
    """'none' if no row of the row group can match, 'all' if every row must, else 'some'."""
    if statistics is None:
        return "some"
    if not statistics.has_min_max:
        return "none" if statistics.num_values == 0 else "some"  # only nulls
    low, high = statistics.min, statistics.max
    if not any(low <= value <= high for value in allowed):
        return "none"
    if low == high and statistics.null_count == 0:
        return "all"
    return "some"


def _rows_with_concepts(column: pa.ChunkedArray, cuis: Sequence[str], n: int) -> np.ndarray:
    keep = np.zeros(n, dtype=bool)
    values = column.combine_chunks()
    flat = pc.list_flatten(values)
    if len(flat) == 0:
        return keep
    parents = pc.list_parent_indices(values).to_numpy()
    hits = pc.is_in(flat.field("cui"), value_set=pa.array(list(cuis), pa.string())).fill_null(False)
    keep[np.unique(parents[hits.to_numpy(zero_copy_only=False)])] = True
    return keep


def iter_captions(index: CorpusIndex) -> Iterator[str]:
    """Every kept row's caption and alternative captions (reads only those two columns)."""
    by_shard: dict[int, list[RowGroupRows]] = {}
    for unit in index.units:
        by_shard.setdefault(unit.shard, []).append(unit)
    for shard, units in sorted(by_shard.items()):
        filesystem, path = fs.filesystem(index.shards[shard])
        with filesystem.open(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            for unit in units:
                columns = [c for c in ("caption", "captions") if c in parquet.schema_arrow.names]
                table = parquet.read_row_group(unit.row_group, columns=columns).take(pa.array(unit.rows))
                alternatives_column = (
                    table.column("captions").to_pylist() if "captions" in columns else [None] * table.num_rows
                )
                for caption, alternatives in zip(
                    table.column("caption").to_pylist(), alternatives_column, strict=True
                ):
                    if caption:
                        yield caption
                    yield from (c for c in alternatives or [] if c)
