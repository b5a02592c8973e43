"""NIfTI-1/2 (.nii, .nii.gz), MGH (.mgh, .mgz) and MINC-1 volumes to 2D slices, read from bytes.

* The volume is reoriented to the closest canonical (RAS+) orientation (``nib.as_closest_canonical``),
  so slicing does not depend on how the file stored its axes.
* 4D volumes: one timepoint (``VolumePolicy.timepoint``), sliced lazily before the data is read.
* Slices: ``VolumePolicy.n_slices`` evenly spaced ones in ``VolumePolicy.plane`` (one: the middle).
* Intensities: clipped to the volume's ``VolumePolicy.percentiles`` (one window for all slices of a
  volume, so they stay comparable), then scaled to 0..255.
* Display convention (radiological): axial and coronal slices show the patient's right on the image
  left; axial has anterior up, coronal and sagittal superior up, sagittal anterior on the left.
  Non-square voxels are resampled so that the image has the physical aspect ratio.

Analyze (.hdr/.img pairs) cannot come from one byte string and is not read; MINC-2 needs ``h5py``.
"""

from __future__ import annotations

import io
import zlib

import nibabel as nib
import numpy as np
from nibabel.fileholders import FileHolder
from PIL import Image

from connectors.images import ImageError, ImageOptions, encode_array, percentile_range, scale_to_uint8
from connectors.medical_image import MedicalImage, VolumePolicy

# Index of the RAS+ axis each plane cuts: sagittal slices are at fixed x (R), coronal at y (A), axial at z (S).
_PLANE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}


def read_volume(
    data: bytes, name: str, options: ImageOptions = ImageOptions(), policy: VolumePolicy = VolumePolicy()
) -> list[MedicalImage]:
    """Slices of a volume as encoded images labelled like "axial 30/60".

    Raises :class:`ImageError`: ``image_too_large`` (input, decompressed size or voxel count over the
    caps), ``nifti_decode`` (corrupt or not a volume), ``volume_timepoint`` (no such timepoint),
    ``image_unsupported`` (non-numeric voxels, more than 4 dimensions, MINC-2 without h5py).
    """
    if len(data) > options.max_input_bytes:
        raise ImageError("image_too_large", f"{len(data)} bytes > max_input_bytes {options.max_input_bytes}")
    raw = gunzip_capped(data, options.max_input_bytes) if data[:2] == b"\x1f\x8b" else data
    img = _open(raw, name)
    shape = img.shape
    if len(shape) > 4:
        raise ImageError("image_unsupported", f"a {len(shape)}D volume")
    if len(shape) == 4:
        if policy.timepoint >= shape[3]:
            raise ImageError("volume_timepoint", f"timepoint {policy.timepoint} of a volume with {shape[3]}")
        try:
            img = img.slicer[..., policy.timepoint]  # lazy: only this timepoint is read
        except Exception as e:
            raise ImageError("nifti_decode", f"cannot select a timepoint: {type(e).__name__}: {e}") from None
    if int(np.prod(img.shape)) > options.max_pixels:
        raise ImageError("image_too_large", f"{img.shape} voxels > max_pixels {options.max_pixels}")
    if img.get_data_dtype().kind not in "biuf":
        raise ImageError("image_unsupported", f"voxel type {img.get_data_dtype()}")
    try:
        if img.ndim == 2:
            img = img.__class__(np.asanyarray(img.dataobj)[..., np.newaxis], img.affine, img.header)
        canonical = nib.as_closest_canonical(img)
        volume = canonical.get_fdata(dtype=np.float32)
        zooms = [float(z) for z in canonical.header.get_zooms()[:3]]
    except Exception as e:
        raise ImageError("nifti_decode", f"{type(e).__name__}: {e}") from None

    low, high = percentile_range(volume, policy.percentiles)
    axis = _PLANE_AXIS[policy.plane]
    size = volume.shape[axis]
    rest = [a for a in range(3) if a != axis]  # remaining RAS axes, in order
    images = []
    for index in slice_indices(size, policy.n_slices)[: policy.max_images]:
        pixels = scale_to_uint8(display_slice(volume, axis, index), low, high)
        # Displayed rows run along the second remaining axis, columns along the first.
        pixels = _square_pixels(pixels, row_spacing=zooms[rest[1]], column_spacing=zooms[rest[0]])
        images.append(MedicalImage(encode_array(pixels, options), f"{policy.plane} {index + 1}/{size}"))
    return images


def display_slice(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """A slice of a RAS+ volume in radiological display orientation.

    The remaining axes (a, b) are both RAS+ (increasing towards patient right/anterior/superior), so
    the image is the transposed slice (rows = b, columns = a) flipped on both axes: top = most
    anterior/superior, left = most right (axial, coronal) or most anterior (sagittal).
    """
    cut = tuple(index if a == axis else slice(None) for a in range(3))
    return volume[cut].T[::-1, ::-1]


def slice_indices(size: int, count: int) -> list[int]:
    """`count` evenly spaced indices strictly inside 0..size-1 (one: the middle, size // 2)."""
    positions = np.linspace(0, size - 1, count + 2)[1:-1]
    return list(dict.fromkeys(int(p + 0.5) for p in positions))


def _square_pixels(pixels: np.ndarray, row_spacing: float, column_spacing: float) -> np.ndarray:
    if row_spacing <= 0 or column_spacing <= 0 or abs(row_spacing / column_spacing - 1) < 0.01:
        return pixels
    unit = min(row_spacing, column_spacing)
    height = max(1, round(pixels.shape[0] * row_spacing / unit))
    width = max(1, round(pixels.shape[1] * column_spacing / unit))
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR))


def gunzip_capped(data: bytes, cap: int) -> bytes:
    """Decompress gzip (all members) without ever holding more than `cap` + 1 bytes of output."""
    members: list[bytes] = []
    size = 0
    pending = data
    while pending:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            member = inflater.decompress(pending, cap + 1 - size)
        except zlib.error as e:
            raise ImageError("nifti_decode", f"gzip: {e}") from None
        size += len(member)
        if size > cap:
            raise ImageError("image_too_large", f"decompresses past {cap} bytes")
        if not inflater.eof:
            raise ImageError("nifti_decode", "gzip stream is truncated")
        members.append(member)
        pending = inflater.unused_data
    return members[0] if len(members) == 1 else b"".join(members)


def _open(raw: bytes, name: str):
    lower = name.lower()
    try:
        if raw[344:348] == b"n+1\x00":
            return nib.Nifti1Image.from_bytes(raw)
        if raw[4:8] == b"n+2\x00":
            return nib.Nifti2Image.from_bytes(raw)
        if raw[:4] in (b"CDF\x01", b"CDF\x02"):
            return nib.Minc1Image.from_file_map({"image": FileHolder(fileobj=io.BytesIO(raw))})
        if raw[:4] == b"\x89HDF":
            try:
                import h5py  # noqa: F401
            except ImportError:
                raise ImageError("image_unsupported", "MINC-2 volumes need h5py (pip install h5py)") from None
            return nib.Minc2Image.from_file_map({"image": FileHolder(fileobj=io.BytesIO(raw))})
        if lower.endswith((".mgh", ".mgz")):
            return nib.MGHImage.from_bytes(raw)
    except ImageError:
        raise
    except Exception as e:
        raise ImageError("nifti_decode", f"{type(e).__name__}: {e}") from None
    raise ImageError("nifti_decode", f"{name}: not a single-file NIfTI-1/2, MGH or MINC volume")
