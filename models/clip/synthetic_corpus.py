"""A corpus of coloured shapes whose captions name them ("a red circle"), for demos, tests and benchmarks.

Images and captions match trivially, so a model that learns anything retrieves well above chance. Rows
carry the filter columns a real corpus has (split, license_group, modality, concepts), some carry K
alternative captions like classification-derived records, and shards follow the corpus naming
(`data/<split>-NNNNN-of-NNNNN.parquet`) with small row groups so readers have several units to split.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from connectors.publish import mark_complete
from schemas import Concept, PairRecord, pairs_to_table

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square", "triangle")
MODALITIES = ("ct", "mri")
LICENSE_GROUPS = ("commercial", "noncommercial")


@dataclass(frozen=True)
class ShapesSpec:
    rows: dict[str, int]  # split -> number of rows, e.g. {"train": 64, "test": 16}
    shards_per_split: int = 2
    rows_per_group: int = 8
    size: tuple[int, int] = (32, 32)  # width, height
    image_format: str = "PNG"  # or "JPEG"
    distinct_images: int | None = None  # reuse this many rendered images (fast large corpora)
    alternatives_every: int = 4  # every k-th row carries K alternative captions (0: none)
    seed: int = 0


def shape_image(colour: str, shape: str, size: tuple[int, int], rng: np.random.Generator, fmt: str) -> bytes:
    width, height = size
    background = tuple(int(v) for v in rng.integers(0, 60, size=3))
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    scale = min(width, height)
    r = int(scale * rng.uniform(0.25, 0.4))
    cx, cy = (
        int(width / 2 + rng.uniform(-0.1, 0.1) * scale),
        int(height / 2 + rng.uniform(-0.1, 0.1) * scale),
    )
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    if fmt == "JPEG":  # texture, so JPEG decoding costs about what a real figure costs
        noise = rng.integers(0, 24, size=(height, width, 3), dtype=np.uint8)
        image = Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    image.save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def shape_records(spec: ShapesSpec) -> list[PairRecord]:
    rng = np.random.default_rng(spec.seed)
    colours, records = list(COLOURS), []
    pool: list[tuple[str, str, bytes]] = []
    n = 0
    for split, count in spec.rows.items():
        for i in range(count):
            if spec.distinct_images and len(pool) >= spec.distinct_images:
                colour, shape, data = pool[n % len(pool)]
            else:
                colour, shape = colours[n % len(colours)], SHAPES[(n // len(colours)) % len(SHAPES)]
                data = shape_image(colour, shape, spec.size, rng, spec.image_format)
                pool.append((colour, shape, data))
            caption = f"a {colour} {shape}"
            alternatives = (
                [caption, f"{colour} {shape}", f"a {shape} coloured {colour}"]
                if spec.alternatives_every and i % spec.alternatives_every == 1
                else []
            )
            records.append(
                PairRecord(
                    id=f"shapes/{split}/{i:06d}",
                    source="classification" if alternatives else "pmc",
                    kind="image",
                    image_bytes=data,
                    image_path=f"{split}-{i:06d}.{'jpg' if spec.image_format == 'JPEG' else 'png'}",
                    image_sha256=hashlib.sha256(data).hexdigest(),
                    width=spec.size[0],
                    height=spec.size[1],
                    caption=caption,
                    captions=alternatives,
                    class_labels=[f"{colour} {shape}"] if alternatives else [],
                    dataset="shapes",
                    split=split,
                    license_group=LICENSE_GROUPS[i % 2],
                    modality=MODALITIES[(i // 2) % 2],
                    concepts=[
                        Concept(f"C{colours.index(colour):07d}", colour, ["T080"], 2, 2 + len(colour), 1.0)
                    ],
                )
            )
            n += 1
    return records


def write_shapes_corpus(root: str | Path, spec: ShapesSpec) -> Path:
    """Write the corpus under `root/data/`; returns `root`."""
    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    records = shape_records(spec)
    for split in spec.rows:
        rows = [r for r in records if r.split == split]
        shards = max(1, min(spec.shards_per_split, len(rows)))
        for k in range(shards):
            part = rows[k::shards]
            path = root / "data" / f"{split}-{k:05d}-of-{shards:05d}.parquet"
            pq.write_table(pairs_to_table(part), path, row_group_size=spec.rows_per_group)
    mark_complete(str(root), "synthetic shapes", "Synthetic shapes (trainer tests)")
    return root
