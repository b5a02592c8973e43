"""The last step of every pipeline: pairs to `data/`, rejects to `rejects/`."""

from __future__ import annotations

import apache_beam as beam

from connectors.corpus import DATA_DIR, REJECTS_DIR
from pipelines.shard_writer import WriteShards
from schemas import PairRecord, RejectRecord, pairs_to_table, rejects_to_table


def _pair_size(record: PairRecord) -> int:
    return len(record.image_bytes or b"") + len(record.caption or "") + 512


def _reject_size(record: RejectRecord) -> int:
    return len(record.detail or "") + 128


class WriteCorpus(beam.PTransform):
    """Takes (pairs, rejects); writes both as deterministic shards."""

    def __init__(self, out: str):
        super().__init__()
        self.out = out

    def expand(self, pcolls):
        pairs, rejects = pcolls
        written_pairs = pairs | "WritePairs" >> WriteShards(
            self.out, DATA_DIR, pairs_to_table, split_of=lambda r: r.split or "train", size_of=_pair_size
        )
        written_rejects = rejects | "WriteRejects" >> WriteShards(
            self.out, REJECTS_DIR, rejects_to_table, split_of=lambda r: "rejects", size_of=_reject_size
        )
        return written_pairs, written_rejects
