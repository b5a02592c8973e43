"""The corpus folder on disk: shard names and writing, the run manifest and its reconciliation.

```
corpus/
  README.md          dataset card (connectors.corpus_card)
  data/<split>-NNNNN-of-NNNNN.parquet
  rejects/rejects-NNNNN-of-NNNNN.parquet
  manifest.json
```
Shards are written whole to a temporary name and then renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from connectors import fs
from schemas import SCHEMA_VERSION, check_schema_version
from schemas.errors import ReasonError
from schemas.records import SCHEMA_METADATA_KEY

DATA_DIR = "data"
REJECTS_DIR = "rejects"
MANIFEST = "manifest.json"
CARD = "README.md"
ROW_GROUP_BYTES = 32 * 1024**2
SHARD_BYTES = 256 * 1024**2


class CorpusFolderError(ReasonError, ValueError):
    """A folder that cannot be used as asked: `corpus_exists`, `output_overlaps_input`, `corpus_incomplete`."""


def shard_path(out: str, folder: str, split: str, index: int, count: int) -> str:
    return fs.join(out, folder, f"{split}-{index:05d}-of-{count:05d}.parquet")


def shard_index(record_id: str, count: int) -> int:
    """Stable shard of a record: the same id lands in the same shard on every run and machine."""
    return int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:8], "big") % count


def shard_count(total_bytes: int, shard_bytes: int = SHARD_BYTES) -> int:
    return max(1, -(-total_bytes // shard_bytes))


def write_table(table: pa.Table, url: str, row_group_bytes: int = ROW_GROUP_BYTES) -> None:
    """Write one shard atomically, rows sorted by id, row groups of about `row_group_bytes`."""
    table = table.sort_by("id")
    rows_per_group = max(
        1, min(table.num_rows, row_group_bytes * max(table.num_rows, 1) // max(table.nbytes, 1))
    )
    filesystem, path = fs.filesystem(url)
    filesystem.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with filesystem.open(temporary, "wb") as f:
        pq.write_table(table, f, row_group_size=rows_per_group)
    filesystem.mv(temporary, path)


def list_shards(corpus: str, folder: str = DATA_DIR) -> list[str]:
    return fs.glob(fs.join(corpus, folder, "*.parquet"))


def shard_rows(url: str) -> int:
    filesystem, path = fs.filesystem(url)
    with filesystem.open(path, "rb") as f:
        parquet = pq.ParquetFile(f)
        check_schema_version(parquet.schema_arrow, url)
        return parquet.metadata.num_rows


def total_rows(corpora: list[str]) -> int:
    """Rows of the corpora's data shards (foreign ones too), from the Parquet footers only."""
    total = 0
    for url in (u for corpus in corpora for u in data_shards(corpus)):
        filesystem, path = fs.filesystem(url)
        with filesystem.open(path, "rb") as f:
            total += pq.ParquetFile(f).metadata.num_rows
    return total


def shard_bytes(url: str) -> int:
    filesystem, path = fs.filesystem(url)
    return int(filesystem.size(path))


def shard_columns(url: str) -> list[str]:
    filesystem, path = fs.filesystem(url)
    with filesystem.open(path, "rb") as f:
        return pq.ParquetFile(f).schema_arrow.names


def read_columns(url: str, columns: list[str]) -> pa.Table:
    filesystem, path = fs.filesystem(url)
    with filesystem.open(path, "rb") as f:
        return pq.read_table(f, columns=columns)


def iter_rows(url: str, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The rows of one shard as dicts, a row group at a time."""
    filesystem, path = fs.filesystem(url)
    with filesystem.open(path, "rb") as f:
        parquet = pq.ParquetFile(f)
        for index in range(parquet.num_row_groups):
            yield from parquet.read_row_group(index, columns=columns).to_pylist()


def corpus_rows(
    corpus: str, folder: str = DATA_DIR, columns: list[str] | None = None
) -> Iterator[dict[str, Any]]:
    """Every row of a corpus's data (or rejects) shards, shard by shard in name order."""
    for url in list_shards(corpus, folder):
        yield from iter_rows(url, columns)


def corpus_schema(corpus: str, required: tuple[str, ...] = ("id",)) -> pa.Schema:
    """The schema shared by a corpus's data shards. Foreign Parquet corpora (no medcorpus version) are
    accepted; a medcorpus corpus of another major schema version is refused with a clear message."""
    shards = data_shards(corpus)
    if not shards:
        raise FileNotFoundError(
            f"{corpus} holds no Parquet shards (looked in {DATA_DIR}/ and the folder itself)"
        )
    schemas = {}
    for url in shards:
        filesystem, path = fs.filesystem(url)
        with filesystem.open(path, "rb") as f:
            schema = pq.ParquetFile(f).schema_arrow
        if schema.metadata and SCHEMA_METADATA_KEY in schema.metadata:
            check_schema_version(schema, url)
        schemas[url] = schema.remove_metadata()
    first = next(iter(schemas.values()))
    for url, schema in schemas.items():
        if not schema.equals(first):
            raise ValueError(
                f"{url} has a different schema from {shards[0]}: shards of one corpus must match"
            )
    missing = [n for n in required if n not in first.names]
    if missing:
        raise ValueError(f"{corpus} lacks the column(s) {missing}")
    return first


def data_shards(corpus: str) -> list[str]:
    """The data shards of a corpus folder, or the Parquet files directly in it (a foreign corpus).

    Every reader lists shards here, so this is where an unfinished corpus is refused: medcorpus shards
    without the `manifest.json` that a finished run writes last (see `connectors.publish`)."""
    shards = list_shards(corpus, DATA_DIR) or fs.glob(fs.join(corpus, "*.parquet"))
    if shards and not fs.exists(fs.join(corpus, MANIFEST)) and _is_medcorpus_shard(shards[0]):
        raise CorpusFolderError(
            "corpus_incomplete",
            f"{corpus} holds medcorpus shards but no {MANIFEST}: the run that wrote it did not finish. "
            "Run that command again (with --overwrite) before reading it.",
        )
    return shards


def _is_medcorpus_shard(url: str) -> bool:
    filesystem, path = fs.filesystem(url)
    with filesystem.open(path, "rb") as f:
        return SCHEMA_METADATA_KEY in (pq.ParquetFile(f).schema_arrow.metadata or {})


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "schema": SCHEMA_VERSION}
    for name in ("medcorpus", "apache-beam", "pyarrow", "lxml", "pillow", "pydicom", "nibabel"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


@dataclass
class RunInfo:
    pipeline: str  # "ingest pmc", "ingest classification", "tag", "balance"
    inputs: dict[str, Any]
    options: dict[str, Any]
    started: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)


def build_manifest(
    out: str, run: RunInfo, stages: dict[str, dict], final_stage: str | None
) -> dict[str, Any]:
    """The manifest of a finished run, with the reconciliation of every stage and of the files.

    `stages` holds the run's counters; its pseudo-stage "written" counts the records handed to the
    shard writer ("pairs", "rejects"), which must match the rows found in the files. When every
    record of `final_stage`'s output is one row (not expanded, say, into one row per caption), its
    `out` must match too.
    """
    stages = dict(stages)
    written = stages.pop("written", {})
    data_shards = list_shards(out, DATA_DIR)
    reject_shards = list_shards(out, REJECTS_DIR)
    by_split: Counter[str] = Counter()
    bytes_by_split: Counter[str] = Counter()
    license_groups: Counter[str] = Counter()
    for url in data_shards:
        split = url.rsplit("/", 1)[-1].split("-", 1)[0]
        by_split[split] += shard_rows(url)
        bytes_by_split[split] += shard_bytes(url)
        if "license_group" in shard_columns(url):
            license_groups.update(read_columns(url, ["license_group"])["license_group"].to_pylist())
    reject_counts: Counter[tuple[str, str]] = Counter()
    reject_bytes = 0
    for url in reject_shards:
        shard_rows(url)  # checks the schema version
        reject_bytes += shard_bytes(url)
        table = read_columns(url, ["stage", "reason"])
        reject_counts.update(zip(table["stage"].to_pylist(), table["reason"].to_pylist(), strict=True))

    problems = []
    for name, stage in stages.items():
        accounted = stage["out"] + sum(stage["rejected"].values()) + sum(stage["removed"].values())
        if stage["in"] != accounted:
            problems.append(f"stage {name}: {stage['in']} in, but {accounted} out, rejected or removed")
    pairs = sum(by_split.values())
    if written.get("pairs", 0) != pairs:
        problems.append(
            f"{written.get('pairs', 0)} pairs were handed to the writer, but {pairs} rows were written"
        )
    if written.get("rejects", 0) != sum(reject_counts.values()):
        problems.append(
            f"{written.get('rejects', 0)} rejects were handed to the writer, but {sum(reject_counts.values())} rows were written"
        )
    if final_stage is not None and stages.get(final_stage, {}).get("out", 0) != pairs:
        problems.append(
            f"stage {final_stage} passed {stages.get(final_stage, {}).get('out', 0)} records, but {pairs} were written"
        )
    counted_rejects = Counter({(s, r): n for s, st in stages.items() for r, n in st["rejected"].items()})
    if +counted_rejects != +reject_counts:
        problems.append(
            f"reject counters {dict(counted_rejects)} differ from reject rows {dict(reject_counts)}"
        )

    wall = time.time() - run.started
    return {
        "pipeline": run.pipeline,
        "schema_version": SCHEMA_VERSION,
        "inputs": run.inputs,
        "options": run.options,
        "stages": stages,
        "outputs": {
            "pairs": pairs,
            "by_split": dict(sorted(by_split.items())),
            "bytes_by_split": dict(sorted(bytes_by_split.items())),
            "license_groups": {
                str(k): v for k, v in sorted(license_groups.items(), key=lambda kv: str(kv[0]))
            },
            "shards": [u.rsplit("/", 1)[-1] for u in data_shards],
        },
        "rejects": {
            "total": sum(reject_counts.values()),
            "by_stage": {
                s: dict(sorted((r, n) for (s2, r), n in reject_counts.items() if s2 == s))
                for s in sorted({s for s, _ in reject_counts})
            },
            "shards": [u.rsplit("/", 1)[-1] for u in reject_shards],
            "bytes": reject_bytes,
        },
        "reconciled": not problems,
        "problems": problems,
        "warnings": degraded(stages),
        "versions": versions(),
        "wall_time_s": round(wall, 3),
        **run.extra,
    }


def degraded(stages: dict[str, dict]) -> list[str]:
    """What made a run's output worse than asked, in words for the summary and the card."""
    warnings = []
    failed = sum(stage["rejected"].get("caption_llm_error", 0) for stage in stages.values())
    if failed:
        warnings.append(
            f"{failed} LLM caption request(s) failed (caption_llm_error): those label sets got fewer LLM "
            "captions than asked, possibly only the template caption. Check the LLM server and rerun; "
            "cached captions are not paid for twice."
        )
    return warnings


def write_manifest(out: str, manifest: dict[str, Any]) -> None:
    filesystem, path = fs.filesystem(out)
    with filesystem.open(fs.join(path, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=False)
        f.write("\n")


def read_manifest(corpus: str) -> dict[str, Any]:
    return json.loads(fs.read_bytes(fs.join(corpus, MANIFEST)))
