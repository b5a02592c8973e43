"""The last step of every pipeline: pairs to `data/`, rejects to `rejects/`."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from connectors.corpus import DATA_DIR, REJECTS_DIR
from pipelines.accounting import CountAs
from pipelines.shard_writer import RecordFormat, WriteShards
from schemas import pairs_to_table, rejects_to_table

PAIRS = RecordFormat(
    to_table=pairs_to_table,
    id_of=lambda r: r.id,
    split_of=lambda r: r.split or "train",
    size_of=lambda r: len(r.image_bytes or b"") + len(r.caption or "") + 512,
)
REJECTS = RecordFormat(
    to_table=rejects_to_table,
    id_of=lambda r: r.id,
    split_of=lambda r: "rejects",
    size_of=lambda r: len(r.detail or "") + 128,
)


def _row_size(row: dict) -> int:
    image = row.get("image")
    image_bytes = image.get("bytes") if isinstance(image, dict) else None
    return len(image_bytes or b"") + len(row.get("caption") or "") + 512


def row_format(schema: pa.Schema) -> RecordFormat:
    """Plain dict rows of `schema` (corpora read back from Parquet, which may carry extra columns)."""
    return RecordFormat(
        to_table=lambda rows: pa.Table.from_pylist(list(rows), schema=schema),
        id_of=lambda r: r["id"],
        split_of=lambda r: r.get("split") or "train",
        size_of=_row_size,
    )


class WriteCorpus(beam.PTransform):
    """Takes (pairs, rejects); writes both as deterministic shards."""

    def __init__(self, out: str, pair_format: RecordFormat = PAIRS):
        super().__init__()
        self.out = out
        self.pair_format = pair_format

    def expand(self, pcolls):
        pairs, rejects = pcolls
        pairs = pairs | "CountPairs" >> beam.ParDo(CountAs("written", "pairs"))
        rejects = rejects | "CountRejects" >> beam.ParDo(CountAs("written", "rejects"))
        written_pairs = pairs | "WritePairs" >> WriteShards(self.out, DATA_DIR, self.pair_format)
        written_rejects = rejects | "WriteRejects" >> WriteShards(self.out, REJECTS_DIR, REJECTS)
        return written_pairs, written_rejects
