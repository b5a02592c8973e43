"""Images converted per second, per input format, on one core.

    .venv/bin/python benchmarks/bench_images.py [--seconds 2]

Ours: ``connectors.medical_image.load_medical_image`` with default options (longest side 1024, JPEG q90,
hash of the decoded pixels). Peer, on the raster formats: a plain Pillow loop, open -> convert to
RGB/L -> resize (same LANCZOS, reducing_gap) -> save JPEG q90, without our checks, alpha handling or
hashing. Both run in this process, pinned to one CPU, on the same bytes.
"""

from __future__ import annotations

import argparse
import io
import os
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import skimage.data
from PIL import Image
from pydicom.data import get_testdata_file

from connectors.images import ImageOptions
from connectors.medical_image import load_medical_image

OPTIONS = ImageOptions()


def _save(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def inputs() -> list[tuple[str, str, bytes, bool]]:
    """(label, file name, bytes, raster?) for each format."""
    retina = Image.fromarray(skimage.data.retina())  # 1411x1411 RGB fundus photograph
    ihc = Image.fromarray(skimage.data.immunohistochemistry())  # 512x512 RGB
    cell = skimage.data.cell().astype(np.uint16) * 64 + np.arange(550, dtype=np.uint16)  # 660x550 16-bit
    with open(get_testdata_file("693_J2KI.dcm"), "rb") as f:
        ct_j2k = f.read()  # 512x512 CT, JPEG 2000
    ds = pydicom.dcmread(io.BytesIO(ct_j2k))
    ds.decompress()
    native = io.BytesIO()
    ds.save_as(native)
    nib_data = Path(nib.__file__).parent / "tests" / "data" / "example4d.nii.gz"
    grid = np.mgrid[0:192, 0:256, 0:256].astype(np.float32)
    head = (
        1000 * np.exp(-((grid - np.array([96, 128, 128])[:, None, None, None]) ** 2).sum(0) / 5000)
    ).astype(np.int16)
    big_nifti = _gzip(nib.Nifti1Image(head, np.diag([1.0, 1.0, 1.0, 1.0])).to_bytes())
    return [
        ("JPEG 1411x1411 RGB", "retina.jpg", _save(retina, "JPEG", quality=95), True),
        ("PNG 1411x1411 RGB", "retina.png", _save(retina, "PNG"), True),
        ("TIFF 16-bit 660x550", "cell.tif", _save(Image.fromarray(cell), "TIFF"), True),
        ("GIF palette 512x512", "ihc.gif", _save(ihc.quantize(256), "GIF"), True),
        ("DICOM CT 512x512 native", "ct.dcm", native.getvalue(), False),
        ("DICOM CT 512x512 JPEG 2000", "ct_j2k.dcm", ct_j2k, False),
        ("NIfTI 128x96x24x2 .nii.gz", "example4d.nii.gz", nib_data.read_bytes(), False),
        ("NIfTI 192x256x256 .nii.gz", "head.nii.gz", big_nifti, False),
    ]


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=6, mtime=0)


def ours(data: bytes, name: str) -> int:
    return len(load_medical_image(data, name, OPTIONS))


def pillow_peer(data: bytes, name: str) -> int:
    img = Image.open(io.BytesIO(data))
    img = (
        img.convert("L" if img.mode in ("L", "I;16", "I") else "RGB") if img.mode not in ("L", "RGB") else img
    )
    img.load()
    longest = max(img.size)
    if longest > OPTIONS.max_side:
        scale = OPTIONS.max_side / longest
        size = (round(img.width * scale), round(img.height * scale))
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    img.save(io.BytesIO(), "JPEG", quality=OPTIONS.jpeg_quality)
    return 1


def rate(convert: Callable[[bytes, str], int], data: bytes, name: str, seconds: float) -> float:
    convert(data, name)  # warm up: imports, plugin registration
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        convert(data, name)
        count += 1
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per format and converter")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    print(
        f"{'format':30} {'bytes':>10} {'ours img/s':>11} {'ms/img':>8} {'Pillow img/s':>13} {'ours/peer':>10}"
    )
    for label, name, data, raster in inputs():
        ours_rate = rate(ours, data, name, args.seconds)
        peer = rate(pillow_peer, data, name, args.seconds) if raster else None
        peer_text = f"{peer:13.1f} {ours_rate / peer:10.2f}" if peer else f"{'-':>13} {'-':>10}"
        print(f"{label:30} {len(data):10d} {ours_rate:11.1f} {1000 / ours_rate:8.1f} {peer_text}")


if __name__ == "__main__":
    main()
