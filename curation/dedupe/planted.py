"""A corpus with planted duplicates, built from real images and real captions, for dedupe's tests and
its quality benchmark.

Bases are real images (pydicom's CT and MR test files, a nibabel MRI volume, scikit-image's fundus,
immunohistochemistry, microscopy and photographs). Each base gets the copies dedupe must find: the same
image under another caption, a JPEG re-encode at quality 20, a 50% downscale, 5% and 10% crops,
greyscale, a white border, and a 3 degree rotation. Beside them sit images that look alike but are not
the same and must NOT be merged: adjacent slices of one MRI volume, and the haematoxylin and DAB stains
separated from one immunohistochemistry slide. Captions are distinct real figure captions and citing
paragraphs from the bundled JATS articles, except one planted caption duplicate (an erratum-like copy of
a caption, differently cased and punctuated, on a different image).

Images are stored the way ingest stores them (`connectors.images`), so pixel hashes mean the same here.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from connectors.images import normalize_image_bytes
from curation.dedupe.signatures import normalize_caption
from schemas import PairRecord

VARIANTS = (
    "copy_recaptioned",
    "jpeg_q20",
    "downscale_50",
    "crop_5",
    "crop_10",
    "greyscale",
    "pad_10",
    "rotate_3",
)
# What near-duplicate detection can be asked to find at default thresholds (the rest are harder cases
# that the embedding level is for; the benchmark reports each variant's recall).
EASY_VARIANTS = ("copy_recaptioned", "jpeg_q20", "downscale_50", "greyscale")
JATS_DIR = Path(__file__).resolve().parents[2] / "sample_data" / "jats"


@dataclass(frozen=True)
class PlantedPair:
    record: PairRecord
    group: str | None  # the base image it copies (or the caption group); None when it must stay alone
    variant: str  # "base", one of VARIANTS, "similar_slice", "stain", "caption_copy"


def _window(pixels: np.ndarray) -> np.ndarray:
    low, high = np.percentile(pixels, (1, 99))
    return (np.clip((pixels - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)


def base_images() -> dict[str, Image.Image]:
    import pydicom
    import skimage.data
    from nibabel.testing import data_path
    from pydicom.data import get_testdata_file

    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array.astype(np.float32)
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array.astype(np.float32)
    return {
        "ct": Image.fromarray(_window(ct)).resize((512, 512), Image.Resampling.BICUBIC),
        "mr": Image.fromarray(_window(mr)).resize((384, 384), Image.Resampling.BICUBIC),
        "brain": mri_slices(data_path)[0],
        "fundus": Image.fromarray(skimage.data.retina()),
        "coffee": Image.fromarray(skimage.data.coffee()),
        "cells": Image.fromarray(skimage.data.cell()),
        "coins": Image.fromarray(skimage.data.coins()),
        "photo": Image.fromarray(skimage.data.astronaut()),
    }


def mri_slices(data_path: str) -> list[Image.Image]:
    """The middle axial slice of nibabel's anatomical MRI and the two slices after it."""
    import nibabel as nib

    volume = np.asarray(nib.load(f"{data_path}/anatomical.nii").dataobj, dtype=np.float32)
    middle = volume.shape[2] // 2
    return [
        Image.fromarray(_window(np.rot90(volume[:, :, z]))).resize((384, 384), Image.Resampling.BICUBIC)
        for z in (middle, middle + 1, middle + 2)
    ]


def stains() -> list[Image.Image]:
    """Haematoxylin and DAB, separated from one IHC slide (two stains of one tissue)."""
    import skimage.data
    from skimage.color import hed2rgb, rgb2hed

    hed = rgb2hed(skimage.data.immunohistochemistry())
    zeros = np.zeros_like(hed[:, :, 0])
    out = []
    for channel in (0, 2):
        parts = [hed[:, :, c] if c == channel else zeros for c in range(3)]
        out.append(Image.fromarray((np.clip(hed2rgb(np.stack(parts, axis=-1)), 0, 1) * 255).astype(np.uint8)))
    return out


def variant(image: Image.Image, name: str) -> Image.Image:
    w, h = image.size
    if name in ("base", "copy_recaptioned"):
        return image
    if name == "jpeg_q20":
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=20)
        return Image.open(io.BytesIO(buffer.getvalue()))
    if name == "downscale_50":
        return image.resize((w // 2, h // 2), Image.Resampling.BILINEAR)
    if name == "crop_5":
        return image.crop((int(w * 0.025), int(h * 0.025), w - int(w * 0.025), h - int(h * 0.025)))
    if name == "crop_10":
        return image.crop((0, 0, w - int(w * 0.1), h - int(h * 0.1)))
    if name == "greyscale":
        return image.convert("L")
    if name == "pad_10":
        return ImageOps.expand(image.convert("RGB"), border=int(max(w, h) * 0.05), fill="white")
    if name == "rotate_3":
        return image.convert("RGB").rotate(3, resample=Image.Resampling.BICUBIC, fillcolor="black")
    raise ValueError(name)


def real_captions() -> list[str]:
    """Distinct figure captions, then citing paragraphs, of the bundled JATS articles."""
    from connectors.jats import parse_jats

    captions, mentions, seen = [], [], set()
    for path in sorted(JATS_DIR.glob("*ml")):
        for figure in parse_jats(path.read_bytes()).figures:
            captions.append(figure.caption)
            mentions += figure.mentions
    out = []
    for text in captions + mentions:
        key = normalize_caption(text)
        if len(key.split()) >= 12 and key not in seen:
            seen.add(key)
            out.append(text)
    return out


def _record(pair_id: str, image: Image.Image, caption: str, license_group: str) -> PairRecord:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    encoded = normalize_image_bytes(buffer.getvalue())
    return PairRecord(
        id=pair_id,
        source="pmc",
        kind="figure",
        image_bytes=encoded.data,
        image_path=f"{pair_id.replace('/', '_')}.{encoded.extension}",
        image_sha256=encoded.sha256,
        width=encoded.width,
        height=encoded.height,
        caption=caption,
        license_group=license_group,
        license="CC BY",
        split="train",
        pmcid=pair_id.split("/")[1],
    )


def planted_pairs(variants: tuple[str, ...] = VARIANTS) -> list[PlantedPair]:
    """The planted corpus: every base with its variants, the look-alikes, and one caption duplicate."""
    from nibabel.testing import data_path

    captions = iter(real_captions())
    out = []
    for base, image in base_images().items():
        # The base is under a non-commercial licence: the keep policy prefers a commercial copy.
        out.append(
            PlantedPair(_record(f"planted/{base}/base", image, next(captions), "noncommercial"), base, "base")
        )
        for name in variants:
            record = _record(f"planted/{base}/{name}", variant(image, name), next(captions), "commercial")
            out.append(PlantedPair(record, base, name))
    for k, image in enumerate(mri_slices(data_path)[1:], start=1):
        out.append(
            PlantedPair(
                _record(f"lookalike/brain/slice+{k}", image, next(captions), "commercial"),
                None,
                "similar_slice",
            )
        )
    for name, image in zip(("haematoxylin", "dab"), stains(), strict=True):
        out.append(
            PlantedPair(_record(f"lookalike/ihc/{name}", image, next(captions), "commercial"), None, "stain")
        )
    # An erratum-like copy: the same caption, re-cased and re-punctuated, on another image.
    import skimage.data

    original = next(captions)
    copy = original.upper().replace(",", " ,").replace(".", " . ")
    for pair_id, pixels, caption in (
        ("caption/original", skimage.data.moon(), original),
        ("caption/erratum", skimage.data.camera(), copy),
    ):
        out.append(
            PlantedPair(
                _record(pair_id, Image.fromarray(pixels), caption, "commercial"), "caption", "caption_copy"
            )
        )
    return out


def write_planted_corpus(out: str, pairs: list[PlantedPair]) -> None:
    """An ordinary corpus folder (shard, manifest, card) holding the planted pairs."""
    from connectors.corpus import DATA_DIR, shard_path, write_table
    from connectors.publish import mark_complete
    from schemas import pairs_to_table

    write_table(pairs_to_table([p.record for p in pairs]), shard_path(out, DATA_DIR, "train", 0, 1))
    mark_complete(out, "planted duplicates", "Planted duplicates (medcorpus dedupe tests)")


@dataclass(frozen=True)
class Scores:
    precision: float  # of the pairs put in one group, the share that are planted duplicates
    recall: float  # of the planted duplicate pairs, the share put in one group
    recall_by_variant: dict[str, float]  # copies of a base found in the base's group
    false_merges: list[tuple[str, str]]  # pairs grouped that must not be


def score(pairs: list[PlantedPair], kept_of: dict[str, str]) -> Scores:
    """Pairwise scores of a dedupe result: `kept_of` maps each removed id to the id its group kept."""
    from itertools import combinations

    group_of = {p.record.id: kept_of.get(p.record.id, p.record.id) for p in pairs}
    truth = {p.record.id: p.group for p in pairs}
    found = planted = hits = 0
    false_merges = []
    for a, b in combinations(sorted(truth), 2):
        same_truth = truth[a] is not None and truth[a] == truth[b]
        same_found = group_of[a] == group_of[b]
        planted += same_truth
        found += same_found
        hits += same_truth and same_found
        if same_found and not same_truth:
            false_merges.append((a, b))
    by_variant: dict[str, list[bool]] = {}
    for p in pairs:
        if p.group and p.variant in VARIANTS:
            base = f"planted/{p.group}/base"
            by_variant.setdefault(p.variant, []).append(group_of[p.record.id] == group_of[base])
    return Scores(
        precision=hits / found if found else 1.0,
        recall=hits / planted if planted else 1.0,
        recall_by_variant={v: sum(x) / len(x) for v, x in by_variant.items()},
        false_merges=false_merges,
    )
