"""DICOM files to display-ready 2D images plus a whitelist of non-identifying attributes.

Greyscale pipeline, as a DICOM viewer renders it: stored values -> Modality LUT (rescale slope /
intercept, pydicom ``apply_modality_lut``) -> VOI LUT or window centre/width from the file (pydicom
``apply_voi_lut``; its output range is mapped to 0..255) or, when the file has neither, a percentile
window (``VolumePolicy.percentiles``) -> MONOCHROME1 inverted so that high values are bright.
Colour: YBR_* is converted to RGB by pydicom's decoders (``as_rgb``), PALETTE COLOR through its
lookup tables, samples wider than 8 bits keep their top 8 bits.

Privacy: the only attributes that leave this module are the ones in :class:`schemas.records.DicomMeta`
(modality, body part, view position, photometric interpretation, rows, columns, pixel spacing,
manufacturer model). Names, IDs, dates, UIDs and institutions are never read out, and the encoded
image carries no metadata. Text burned into the pixels is not detected.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.pixels.processing import convert_color_space
from pydicom.pixels.utils import as_pixel_options, get_nr_frames

from connectors.images import ImageError, ImageOptions, encode_array, percentile_range, scale_to_uint8
from connectors.medical_image import MedicalImage, VolumePolicy
from schemas.records import DicomMeta

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_DEFLATED = b"1.2.840.10008.1.2.1.99"
_MAX_TEXT = 64  # whitelisted text attributes are short codes; a longer value is cut


def read_dicom(
    data: bytes, options: ImageOptions = ImageOptions(), policy: VolumePolicy = VolumePolicy()
) -> list[MedicalImage]:
    """The chosen frame(s) of a DICOM file as encoded images, each with the file's :class:`DicomMeta`.

    Raises :class:`ImageError` with reason ``image_too_large``, ``dicom_decode``, ``dicom_no_pixels``,
    ``dicom_codec_missing``, ``dicom_burned_in_annotation``, ``image_unsupported`` or ``image_too_small``.
    """
    if len(data) > options.max_input_bytes:
        raise ImageError("image_too_large", f"{len(data)} bytes > max_input_bytes {options.max_input_bytes}")
    _check_deflated_size(data, options.max_input_bytes)
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as e:
        raise ImageError("dicom_decode", f"{type(e).__name__}: {e}") from None
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        if "SOPClassUID" in ds or "Modality" in ds:
            raise ImageError("dicom_no_pixels", f"a {ds.get('Modality', 'DICOM')} object without pixel data")
        raise ImageError("dicom_decode", "not a DICOM dataset")
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        # Text burned into the pixels (common in ultrasound) can name the patient; no whitelist helps there.
        raise ImageError(
            "dicom_burned_in_annotation", "BurnedInAnnotation is YES: pixels may carry identifying text"
        )

    try:
        meta = dicom_meta(ds)
        rows, columns = int(ds.Rows), int(ds.Columns)
        n_frames = max(int(get_nr_frames(ds, warn=False)), 1)
    except Exception as e:
        raise ImageError("dicom_decode", f"image attributes unreadable: {type(e).__name__}: {e}") from None
    if rows * columns > options.max_pixels:
        raise ImageError("image_too_large", f"{columns}x{rows} > max_pixels {options.max_pixels}")

    decoder = _decoder(ds)
    images = []
    for index in frame_indices(n_frames, policy):
        try:
            arr, info = decoder.as_array(ds, index=index, validate=True, **as_pixel_options(ds))
            pixels = _display_pixels(arr, ds, str(info["photometric_interpretation"]), policy)
        except ImageError:
            raise
        except Exception as e:
            raise ImageError("dicom_decode", f"frame {index + 1}: {type(e).__name__}: {e}") from None
        label = f"frame {index + 1}/{n_frames}" if n_frames > 1 else None
        images.append(MedicalImage(encode_array(pixels, options), label, meta))
    return images


def frame_indices(n_frames: int, policy: VolumePolicy) -> list[int]:
    if policy.frame_step is None:
        return [n_frames // 2]
    return list(range(0, n_frames, policy.frame_step))[: policy.max_images]


def _check_deflated_size(data: bytes, cap: int) -> None:
    """pydicom inflates a Deflated-transfer-syntax body in one call; bound it first (zip bomb)."""
    # (0002,0000) File Meta Information Group Length, explicit VR "UL", right after the "DICM" magic
    if data[128:136] != b"DICM\x02\x00\x00\x00" or data[136:138] != b"UL":
        return
    meta_end = 144 + int.from_bytes(data[140:144], "little")
    if _DEFLATED not in data[132:meta_end]:
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(data[meta_end:], cap + 1)
    except zlib.error as e:
        raise ImageError("dicom_decode", f"deflated body: {e}") from None
    if len(inflated) > cap:
        raise ImageError("image_too_large", f"deflated dataset inflates past {cap} bytes")


def _decoder(ds: Dataset):
    file_meta = getattr(ds, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if syntax is None:
        # Files without a meta header: pydicom has already guessed the encoding while reading.
        implicit, little_endian = ds.original_encoding
        if implicit:
            syntax = pydicom.uid.ImplicitVRLittleEndian
        else:
            syntax = pydicom.uid.ExplicitVRLittleEndian if little_endian else pydicom.uid.ExplicitVRBigEndian
        if file_meta is None:
            ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise ImageError(
            "dicom_codec_missing", f"no pixel decoder exists for transfer syntax {syntax.name} ({syntax})"
        ) from None
    if not decoder.is_available:
        raise ImageError(
            "dicom_codec_missing",
            f"transfer syntax {syntax.name} needs one of: {'; '.join(decoder.missing_dependencies)}",
        )
    return decoder


def _display_pixels(arr: np.ndarray, ds: Dataset, photometric: str, policy: VolumePolicy) -> np.ndarray:
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        pixels = _window(apply_modality_lut(arr, ds), ds, policy)
        return 255 - pixels if photometric == "MONOCHROME1" else pixels
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        return (rgb >> 8).astype(np.uint8) if rgb.dtype.itemsize > 1 else rgb.astype(np.uint8)
    if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422") and arr.ndim == 3:
        if arr.dtype.itemsize > 1:
            bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8))
            arr = (arr >> max(bits - 8, 0)).astype(np.uint8)
        if photometric != "RGB":
            arr = convert_color_space(arr, photometric, "RGB")
        return arr
    raise ImageError("image_unsupported", f"photometric interpretation {photometric!r}")


def _window(values: np.ndarray, ds: Dataset, policy: VolumePolicy) -> np.ndarray:
    """Apply the file's VOI LUT / window, mapping its output range to 0..255; else a percentile window."""
    has_lut = bool(ds.get("VOILUTSequence"))
    has_window = ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None
    if has_lut or has_window:
        try:
            if has_lut:
                # The LUT's own entries bound its output: probe it with every input it maps.
                descriptor = ds.VOILUTSequence[0].LUTDescriptor
                probe = np.arange(descriptor[1], descriptor[1] + (descriptor[0] or 2**16))
            else:
                # Far below and above the window: pydicom returns its output minimum and maximum.
                probe = np.array([-1e30, 1e30])
            # A LUT is indexed by integers; windowing is computed in floating point.
            inputs = np.rint(values).astype(np.int64) if has_lut else values.astype(np.float64)
            out = apply_voi_lut(inputs, ds, prefer_lut=True)
            low_high = apply_voi_lut(probe.astype(inputs.dtype), ds, prefer_lut=True)
            return scale_to_uint8(out, float(low_high.min()), float(low_high.max()))
        except (ValueError, TypeError, AttributeError, IndexError, NotImplementedError):
            pass  # a malformed window or LUT: fall back to the percentile window
    low, high = percentile_range(values, policy.percentiles)
    return scale_to_uint8(values, low, high)


def dicom_meta(ds: Dataset) -> DicomMeta:
    """The whitelisted attributes of a dataset. Add a field here only if it cannot identify a person."""
    return DicomMeta(
        modality=_text(ds, "Modality"),
        body_part=_text(ds, "BodyPartExamined"),
        view_position=_text(ds, "ViewPosition"),
        photometric_interpretation=_text(ds, "PhotometricInterpretation"),
        rows=_int(ds, "Rows"),
        columns=_int(ds, "Columns"),
        pixel_spacing=_pixel_spacing(ds),
        manufacturer_model=_text(ds, "ManufacturerModelName"),
    )


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    text = str(value).strip() if value is not None else ""
    return text[:_MAX_TEXT] or None


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(ds[keyword].value)
    except (KeyError, TypeError, ValueError):
        return None


def _pixel_spacing(ds: Dataset) -> list[float] | None:
    value = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if value is None:
        try:
            value = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        except (AttributeError, IndexError, KeyError):
            return None
    try:
        return [float(v) for v in value][:2]
    except (TypeError, ValueError):
        return None
