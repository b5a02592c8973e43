"""The numbers of a corpus report, computed once for the HTML page and the terminal tables.

Cheap by construction: one pass over the data shards reads only the small columns (never `image`,
and of `concepts` only the CUI and name leaves), a row group at a time, into counters; rejects are read
without images too. Thumbnails are fetched later for a few sampled rows (`connectors.report.samples`).
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors import fs
from connectors.corpus import MANIFEST, REJECTS_DIR, data_shards, list_shards, read_manifest

SAMPLES_PER_MODALITY = 4
EXAMPLES_PER_REASON = 3
DEDUPE_EXAMPLES = 6
UNKNOWN = "unknown"

_CUI = "concepts.list.element.cui"
_NAME = "concepts.list.element.name"
_SCALARS = ("id", "split", "source", "license_group", "modality", "caption", "width", "height")


@dataclass(frozen=True)
class SampleRef:
    """Where a sampled row lives: read back with its image in a second, small pass."""

    shard: str
    row_group: int
    id: str


@dataclass
class CorpusStats:
    corpus: str
    manifest: dict[str, Any]
    pairs: int = 0
    # (split, source, licence group) -> pairs
    groups: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    modalities: Counter[str] = field(default_factory=Counter)
    tagged: bool = False  # some pair has concepts
    concepts: Counter[str] = field(default_factory=Counter)  # CUI -> pairs that carry it
    concept_names: dict[str, str] = field(default_factory=dict)
    caption_words: Counter[int] = field(default_factory=Counter)
    widths: Counter[int] = field(default_factory=Counter)
    heights: Counter[int] = field(default_factory=Counter)
    rejects: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, reason) -> rows
    reject_examples: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)
    dedupe_examples: list[dict[str, Any]] = field(default_factory=list)
    samples: dict[str, list[SampleRef]] = field(default_factory=dict)  # modality -> rows

    @property
    def pipeline(self) -> str:
        return str(self.manifest.get("pipeline", "?"))

    @property
    def removals(self) -> Counter[tuple[str, str]]:
        """Inputs a stage dropped without a reject row (balance's cap, superseded versions), by reason."""
        return Counter(
            {
                (stage, reason): n
                for stage, counts in self.manifest.get("stages", {}).items()
                for reason, n in counts.get("removed", {}).items()
            }
        )

    @property
    def concept_histogram(self) -> dict[str, Any] | None:
        """Balance's before / after concept counts (its manifest holds both)."""
        return self.manifest.get("concept_histogram")

    def lineage(self) -> list[dict[str, Any]]:
        """The steps that made this corpus, oldest first, from the manifests of its input corpora that
        still exist (their counts only: nothing but the manifests is read)."""
        steps, seen, queue = [], set(), [(self.corpus, self.manifest)]
        while queue and len(steps) < 20:
            corpus, manifest = queue.pop(0)
            steps.append({"corpus": corpus if steps else "(this corpus)", **_step_summary(manifest)})
            for parent in input_corpora(manifest):
                if parent not in seen and fs.exists(fs.join(parent, MANIFEST)):
                    seen.add(parent)
                    queue.append((parent, read_manifest(parent)))
        return steps[::-1]


def input_corpora(manifest: dict[str, Any]) -> list[str]:
    """The corpus folders a step read (tag and balance: one, dedupe: several); ingest reads sources."""
    inputs = manifest.get("inputs", {})
    found = [inputs["corpus"]] if isinstance(inputs.get("corpus"), str) else []
    return found + [c for c in inputs.get("corpora", []) if isinstance(c, str)]


def _step_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    stages = manifest.get("stages", {})
    return {
        "pipeline": manifest.get("pipeline", "?"),
        "pairs": manifest.get("outputs", {}).get("pairs", 0),
        "rejected": sum(sum(s.get("rejected", {}).values()) for s in stages.values()),
        "removed": sum(sum(s.get("removed", {}).values()) for s in stages.values()),
    }


def _rank(text: str) -> int:
    """A stable pseudo-random rank: samples are the same on every run and machine."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def compute_stats(corpus: str, manifest: dict[str, Any] | None = None) -> CorpusStats:
    """Every number of the report for the corpus folder `corpus` (its manifest read unless given)."""
    stats = CorpusStats(corpus=corpus, manifest=manifest if manifest is not None else read_manifest(corpus))
    # Per modality a heap of (-row group rank, -row rank, id, ref): the rows with the smallest ranks are kept.
    # The row group's rank comes first so that picks gather in few row groups: reading their images
    # back costs a few row groups, not one per sampled row.
    heaps: dict[str, list[tuple[int, int, str, SampleRef]]] = {}
    for url in data_shards(corpus):
        filesystem, path = fs.filesystem(url)
        with filesystem.open(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            names = set(parquet.schema_arrow.names)
            columns = [c for c in _SCALARS if c in names] + ([_CUI, _NAME] if "concepts" in names else [])
            for index in range(parquet.num_row_groups):
                table = parquet.read_row_group(index, columns=columns)
                _count(stats, table)
                _sample(heaps, url, index, table)
    stats.samples = {
        modality: [ref for *_, ref in sorted(heap, key=lambda e: (-e[0], -e[1]))]
        for modality, heap in sorted(heaps.items())
    }
    stats.tagged = bool(stats.concepts)  # untagged corpora carry the column too, empty
    _count_rejects(stats)
    return stats


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    """A string column with missing values (and missing columns) as UNKNOWN."""
    if name not in table.column_names:
        return pa.chunked_array([pa.array([UNKNOWN] * table.num_rows, pa.string())])
    return pc.fill_null(pc.cast(table[name], pa.string()), UNKNOWN)


def _count(stats: CorpusStats, table: pa.Table) -> None:
    stats.pairs += table.num_rows
    keys = zip(*(_column(table, c).to_pylist() for c in ("split", "source", "license_group")), strict=True)
    stats.groups.update(keys)
    stats.modalities.update(_column(table, "modality").to_pylist())
    if "caption" in table.column_names:
        words = pc.count_substring_regex(pc.fill_null(table["caption"], ""), r"\S+")
        stats.caption_words.update(words.to_pylist())
    for name, counter in (("width", stats.widths), ("height", stats.heights)):
        if name in table.column_names:
            counter.update(v for v in table[name].to_pylist() if v is not None)
    if "concepts" in table.column_names:
        concepts = table["concepts"].combine_chunks()
        flat = pc.list_flatten(concepts)
        pairs = pa.table(
            {
                "row": pc.list_parent_indices(concepts),
                "cui": flat.field("cui"),
                "name": flat.field("name"),
            }
        )
        # A pair counts once per concept, however often its caption names it (as balance counts).
        per_pair = pairs.group_by(["row", "cui"]).aggregate([("name", "min")])
        for cui, n in zip(
            *per_pair.group_by("cui").aggregate([("row", "count")]).to_pydict().values(), strict=True
        ):
            stats.concepts[cui] += n
        for cui, name in zip(per_pair["cui"].to_pylist(), per_pair["name_min"].to_pylist(), strict=True):
            stats.concept_names.setdefault(cui, name or cui)


def _sample(heaps: dict[str, list], url: str, index: int, table: pa.Table) -> None:
    if "id" not in table.column_names:
        return
    group_rank = _rank(f"{url.rsplit('/', 1)[-1]}#{index}")
    modalities = _column(table, "modality").to_pylist()
    for record_id, modality in zip(table["id"].to_pylist(), modalities, strict=True):
        heap = heaps.setdefault(modality, [])
        if len(heap) == SAMPLES_PER_MODALITY and -heap[0][0] < group_rank:
            continue  # this row group ranks after every pick already made for this modality
        entry = (-group_rank, -_rank(record_id), record_id, SampleRef(url, index, record_id))
        if len(heap) < SAMPLES_PER_MODALITY:
            heapq.heappush(heap, entry)
        elif entry[:2] > heap[0][:2]:
            heapq.heapreplace(heap, entry)


def _count_rejects(stats: CorpusStats) -> None:
    """Reject rows by (stage, reason), the smallest ids of each as examples, and dedupe's pairs."""
    examples: dict[tuple[str, str], list[tuple[str, str]]] = {}
    dedupe: list[tuple[str, str]] = []
    for url in list_shards(stats.corpus, REJECTS_DIR):
        filesystem, path = fs.filesystem(url)
        with filesystem.open(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            for index in range(parquet.num_row_groups):
                table = parquet.read_row_group(index, columns=["id", "stage", "reason", "detail"])
                for record_id, stage, reason, detail in zip(*table.to_pydict().values(), strict=True):
                    key = (stage, reason)
                    stats.rejects[key] += 1
                    _keep_smallest(
                        examples.setdefault(key, []), (record_id, detail or ""), EXAMPLES_PER_REASON
                    )
                    if stage == "dedupe" and reason in ("duplicate", "eval_overlap"):
                        _keep_smallest(dedupe, (record_id, detail or ""), DEDUPE_EXAMPLES)
    stats.reject_examples = {
        key: [{"id": i, "detail": d} for i, d in sorted(rows)] for key, rows in sorted(examples.items())
    }
    stats.dedupe_examples = [_dedupe_example(i, d) for i, d in sorted(dedupe)]


def _keep_smallest(heap: list[tuple[str, str]], item: tuple[str, str], k: int) -> None:
    """Keep the k smallest items (by id) in `heap`, a sorted list (k is a handful)."""
    if len(heap) < k:
        heap.append(item)
        heap.sort()
    elif item < heap[-1]:
        heap[-1] = item
        heap.sort()


def _dedupe_example(record_id: str, detail: str) -> dict[str, Any]:
    try:
        parsed = json.loads(detail)
    except ValueError:
        parsed = {}
    return {
        "removed": record_id,
        "kept": parsed.get("kept") or parsed.get("eval_item"),
        "reason": "eval_overlap" if "eval_item" in parsed else "duplicate",
        "level": parsed.get("level"),
        "similarity": parsed.get("similarity"),
    }
