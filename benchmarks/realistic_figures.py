"""Deterministic, distinct, PMC-like figure images for the benchmarks.

A PMC figure is mostly a multi-panel composite: photographs and micrographs next to charts, with panel
letters, on white. Each figure here is composed from real images (scikit-image's retina,
immunohistochemistry, cell, Hubble field, moon, ...; pydicom's CT and MR test slices) cropped, scaled
and colour-shifted differently for every figure, plus line and bar charts drawn from random data, so no
two figures share pixels and JPEG sees realistic content (smooth tissue, sharp text and lines).

Sizes: the longest side is log-uniform in ``long_sides`` (default 900-2500 px; median about 1500 px,
about 1.5 MP at the 0.55-1.0 aspect ratios drawn), saved as baseline JPEG at a quality drawn from
75/85/90/95; about one in seven is greyscale.
"""

from __future__ import annotations

import io
import math
from functools import cache

import numpy as np
import pydicom
import skimage.data
from PIL import Image, ImageDraw, ImageFont
from pydicom.data import get_testdata_file

DEFAULT_LONG_SIDES = (900, 2500)


@cache
def _sources() -> tuple[Image.Image, ...]:
    def dicom(name: str) -> Image.Image:
        pixels = pydicom.dcmread(get_testdata_file(name)).pixel_array.astype(np.float32)
        low, high = np.percentile(pixels, (1, 99))
        return Image.fromarray(np.clip((pixels - low) * 255 / max(high - low, 1), 0, 255).astype(np.uint8))

    arrays = [
        skimage.data.retina(),
        skimage.data.immunohistochemistry(),
        skimage.data.hubble_deep_field(),
        skimage.data.cell(),
        skimage.data.moon(),
        skimage.data.coffee(),
        skimage.data.rocket(),
        skimage.data.camera(),
        skimage.data.brick(),
        (skimage.data.shepp_logan_phantom() * 255).astype(np.uint8),
    ]
    return tuple(Image.fromarray(a) for a in arrays) + (dicom("CT_small.dcm"), dicom("MR_small.dcm"))


def _photo_panel(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    sources = _sources()
    src = sources[int(rng.integers(len(sources)))].convert("RGB")
    # A random crop of at least a third of the source, scaled to the panel: distinct pixels per figure.
    cw = int(src.width * rng.uniform(0.35, 1.0))
    ch = int(src.height * rng.uniform(0.35, 1.0))
    x, y = int(rng.integers(0, src.width - cw + 1)), int(rng.integers(0, src.height - ch + 1))
    panel = src.crop((x, y, x + cw, y + ch)).resize(size, Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        panel = panel.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    gain = rng.uniform(0.8, 1.2, 3).astype(np.float32)
    pixels = np.asarray(panel, dtype=np.float32) * gain + rng.normal(0, 2.0, (size[1], size[0], 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _chart_panel(rng: np.random.Generator, size: tuple[int, int], font: ImageFont.ImageFont) -> Image.Image:
    w, h = size
    panel = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(panel)
    left, bottom, top, right = int(w * 0.12), int(h * 0.85), int(h * 0.08), int(w * 0.96)
    draw.line([(left, top), (left, bottom), (right, bottom)], fill="black", width=max(1, w // 300))
    step = rng.uniform(0.5, 20)
    for k in range(5):  # ticks and labels
        ty = bottom - k * (bottom - top) // 5
        draw.line([(left - 6, ty), (left, ty)], fill="black", width=1)
        draw.text((left - int(w * 0.1), ty - 6), f"{k * step:.1f}", fill="black", font=font)
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"]
    if rng.random() < 0.5:  # bars with error whiskers
        n = int(rng.integers(3, 9))
        width = (right - left) / (n * 1.5)
        for i in range(n):
            x0 = left + (i * 1.5 + 0.5) * width
            bar = rng.uniform(0.15, 0.95) * (bottom - top)
            draw.rectangle(
                [x0, bottom - bar, x0 + width, bottom], fill=colours[i % len(colours)], outline="black"
            )
            err = rng.uniform(0.02, 0.1) * (bottom - top)
            draw.line(
                [(x0 + width / 2, bottom - bar - err), (x0 + width / 2, bottom - bar + err)], fill="black"
            )
    else:  # noisy lines
        xs = np.linspace(left, right, 60)
        for c in range(int(rng.integers(1, 4))):
            ys = np.cumsum(rng.normal(0, 1, xs.size))
            ys = bottom - (ys - ys.min()) / max(np.ptp(ys), 1e-6) * (bottom - top) * 0.9
            draw.line(
                list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=colours[c], width=max(2, w // 250)
            )
    draw.text((left, bottom + 8), "time (h)", fill="black", font=font)
    return panel


def figure(index: int, long_sides: tuple[int, int] = DEFAULT_LONG_SIDES, seed: int = 0) -> Image.Image:
    """The `index`-th figure: a 1-3 x 1-3 grid of panels, each a real-image crop or a chart, lettered."""
    rng = np.random.default_rng([seed, index])
    longest = round(math.exp(rng.uniform(math.log(long_sides[0]), math.log(long_sides[1]))))
    shortest = round(longest * rng.uniform(0.55, 1.0))
    width, height = (longest, shortest) if rng.random() < 0.7 else (shortest, longest)
    rows, cols = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    canvas = Image.new("RGB", (width, height), "white")
    font = ImageFont.load_default(size=max(12, height // 40))
    gap = max(4, width // 100)
    cell_w, cell_h = (width - gap * (cols + 1)) // cols, (height - gap * (rows + 1)) // rows
    draw = ImageDraw.Draw(canvas)
    for r in range(rows):
        for c in range(cols):
            x, y = gap + c * (cell_w + gap), gap + r * (cell_h + gap)
            chart = rng.random() < 0.35
            panel = (
                _chart_panel(rng, (cell_w, cell_h), font) if chart else _photo_panel(rng, (cell_w, cell_h))
            )
            canvas.paste(panel, (x, y))
            draw.text(
                (x + 6, y + 4), "ABCDEFGHI"[r * cols + c], fill="black" if chart else "white", font=font
            )
    return canvas.convert("L") if rng.random() < 0.15 else canvas


def figure_jpeg(index: int, long_sides: tuple[int, int] = DEFAULT_LONG_SIDES, seed: int = 0) -> bytes:
    rng = np.random.default_rng([seed, index, 1])
    buffer = io.BytesIO()
    figure(index, long_sides, seed).save(buffer, "JPEG", quality=int(rng.choice([75, 85, 90, 95])))
    return buffer.getvalue()
