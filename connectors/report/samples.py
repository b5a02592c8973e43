"""The few rows a report shows with their images: sampled pairs, and dedupe's kept / removed pairs.

Images become small JPEG thumbnails embedded as data URIs, so the page is one self-contained file.
Rows are found by id with Parquet statistics doing the work: shards are sorted by id, so a lookup
reads only the row groups whose id range holds one of the ids asked for.
"""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from PIL import Image

from connectors import fs
from connectors.corpus import data_shards
from connectors.report.stats import SampleRef

THUMBNAIL_SIDE = 192
_SHOWN = ("id", "image", "caption", "modality", "source", "license_group", "width", "height", "concepts")


@dataclass
class Shown:
    """A pair as the report shows it."""

    id: str
    thumbnail: str | None  # a data: URI, None when the image does not decode
    caption: str = ""
    modality: str = ""
    source: str = ""
    license_group: str = ""
    size: str = ""
    concepts: list[str] = field(default_factory=list)


def thumbnail(image_bytes: bytes | None, side: int = THUMBNAIL_SIDE) -> str | None:
    """A JPEG data URI of the image scaled to fit `side`; None when the bytes are no image."""
    if not image_bytes:
        return None
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            image.draft("RGB", (side, side))  # JPEG decodes at a reduced scale: cheap for big images
            small = image.convert("RGB")
            small.thumbnail((side, side))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def shown(row: dict[str, Any]) -> Shown:
    image = row.get("image") or {}
    concepts: list[str] = []
    for concept in row.get("concepts") or []:
        if concept.get("name") and concept["name"] not in concepts:
            concepts.append(concept["name"])
    width, height = row.get("width"), row.get("height")
    return Shown(
        id=row["id"],
        thumbnail=thumbnail(image.get("bytes") if isinstance(image, dict) else None),
        caption=row.get("caption") or "",
        modality=row.get("modality") or "",
        source=row.get("source") or "",
        license_group=row.get("license_group") or "",
        size=f"{width}x{height}" if width and height else "",
        concepts=concepts,
    )


def sampled_pairs(samples: dict[str, list[SampleRef]]) -> dict[str, list[Shown]]:
    """The sampled rows, read back a row group at a time, by modality."""
    wanted: dict[tuple[str, int], set[str]] = defaultdict(set)
    for refs in samples.values():
        for ref in refs:
            wanted[(ref.shard, ref.row_group)].add(ref.id)
    rows: dict[str, dict[str, Any]] = {}
    for (url, index), ids in sorted(wanted.items()):
        filesystem, path = fs.filesystem(url)
        with filesystem.open(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            columns = [c for c in _SHOWN if c in parquet.schema_arrow.names]
            table = parquet.read_row_group(index, columns=columns)
        table = table.filter(pc.is_in(table["id"], value_set=pa.array(sorted(ids))))
        rows.update((row["id"], row) for row in table.to_pylist())
    return {
        modality: [shown(rows[ref.id]) for ref in refs if ref.id in rows]
        for modality, refs in samples.items()
    }


def find_rows(corpora: Iterable[str], ids: Iterable[str]) -> dict[str, Shown]:
    """The rows with these ids in any of the corpora (the first corpus that has an id wins)."""
    missing = set(ids)
    found: dict[str, Shown] = {}
    for corpus in corpora:
        if not missing:
            break
        try:
            shards = data_shards(corpus)
        except (OSError, ValueError):
            continue  # an input that was moved or deleted since: its pairs are shown without images
        if not shards:
            continue
        filesystem, _ = fs.filesystem(shards[0])
        dataset = pads.dataset([fs.filesystem(u)[1] for u in shards], format="parquet", filesystem=filesystem)
        columns = [c for c in _SHOWN if c in dataset.schema.names]
        table = dataset.to_table(columns=columns, filter=pc.field("id").isin(sorted(missing)))
        for row in table.to_pylist():
            if row["id"] in missing:
                found[row["id"]] = shown(row)
                missing.discard(row["id"])
    return found


def dropped_examples(corpus: str, source: str, k: int = 3, candidates: int = 5000) -> list[Shown]:
    """A few pairs of the corpus `source` that `corpus` (made from it) no longer holds: balance's
    removals, which have no reject rows. Only the first `candidates` ids of `source` are checked, so
    this stays cheap on a large corpus (and may find fewer than k)."""
    try:
        shards = data_shards(source)
    except (OSError, ValueError):
        return []
    ids: list[str] = []
    for url in shards:
        filesystem, path = fs.filesystem(url)
        with filesystem.open(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            for index in range(parquet.num_row_groups):
                ids += parquet.read_row_group(index, columns=["id"])["id"].to_pylist()
                if len(ids) >= candidates:
                    break
        if len(ids) >= candidates:
            break
    kept = set(_ids_present(corpus, ids[:candidates]))
    dropped = sorted(i for i in ids[:candidates] if i not in kept)[:k]
    rows = find_rows([source], dropped)
    return [rows[i] for i in dropped if i in rows]


def _ids_present(corpus: str, ids: list[str]) -> list[str]:
    shards = data_shards(corpus)
    if not shards or not ids:
        return []
    filesystem, _ = fs.filesystem(shards[0])
    dataset = pads.dataset([fs.filesystem(u)[1] for u in shards], format="parquet", filesystem=filesystem)
    return dataset.to_table(columns=["id"], filter=pc.field("id").isin(ids))["id"].to_pylist()
