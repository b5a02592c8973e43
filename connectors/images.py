"""Raster decoding and normalised encoding: the one image path for every source.

PMC figures, classification images and the 2D slices that the DICOM and NIfTI readers produce all end
in :func:`encode_array`, so every image in a corpus has the same size limits, colour modes, encoder
settings and content hash.

Decoding rules (:func:`decode_raster`):

* Pillow opens only the formats in ``ALLOWED_FORMATS`` (JPEG includes multi-picture MPO); anything else is ``image_unsupported`` (this
  also keeps Pillow from handing EPS/PS files to Ghostscript).
* The size in the header is checked against ``max_pixels`` before any pixel is decoded, so a
  decompression bomb costs a header parse, not memory.
* The first frame of multi-page TIFF / animated GIF is used; EXIF orientation is applied.
* Modes become ``L`` or ``RGB``: palette -> RGB (or L when the palette is grey), alpha composited on
  white, LA -> L, CMYK / YCbCr / LAB -> RGB, 1-bit -> L. 16-bit and 32-bit greyscale (``I;16*``, ``I``,
  ``F``) are stretched linearly from the image's own min/max to 0..255 (no clipping: a 16-bit image
  keeps its full range, only quantised).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from schemas.errors import ReasonError

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "TIFF", "BMP", "WEBP", "JPEG2000", "PPM")

# Signatures of the formats above: a file that starts like one of them but does not open is corrupt
# ("image_decode"), anything else is a format we do not read ("image_unsupported").
_SIGNATURES = (
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",
    b"MM\x00*",
    b"II+\x00",
    b"MM\x00+",
    b"BM",
    b"RIFF",
    b"\x00\x00\x00\x0cjP  ",
    b"\xffO\xffQ",
)

_HIGH_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
_WHITE = 255


class ImageError(ReasonError):
    """An image that cannot become a corpus image. `reason` is a short stable code for reject rows."""


@dataclass(frozen=True)
class ImageOptions:
    max_side: int = 1024  # longest side after resizing (aspect kept)
    min_side: int = 32  # a shorter side than this is "image_too_small"
    max_pixels: int = 89_478_485  # decoded pixels (Pillow's own bomb limit); more is "image_too_large"
    max_input_bytes: int = 256 * 1024**2  # compressed input (and decompressed volume) cap
    format: str = "jpeg"  # "jpeg" | "png" (lossless)
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if self.format not in ("jpeg", "png"):
            raise ValueError(f"image format must be 'jpeg' or 'png', got {self.format!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if not 1 <= self.min_side <= self.max_side:
            raise ValueError(f"need 1 <= min_side <= max_side, got {self.min_side}, {self.max_side}")


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    format: str  # "jpeg" | "png"
    extension: str  # "jpg" | "png"
    width: int  # after resizing
    height: int
    mode: str  # "RGB" | "L"
    sha256: str  # of the decoded pixels before resizing, with their shape and mode


def decode_raster(data: bytes, options: ImageOptions = ImageOptions()) -> np.ndarray:
    """Decode JPEG/PNG/GIF/TIFF/... bytes to uint8 pixels, HxW (greyscale) or HxWx3 (RGB)."""
    if len(data) > options.max_input_bytes:
        raise ImageError("image_too_large", f"{len(data)} bytes > max_input_bytes {options.max_input_bytes}")
    try:
        with warnings.catch_warnings():
            # Our own cap below handles what this warns about; one warning per big figure is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as e:
        raise ImageError("image_too_large", str(e)) from None
    except UnidentifiedImageError:
        if data.startswith(_SIGNATURES):
            raise ImageError("image_decode", "the header of this image could not be parsed") from None
        raise ImageError("image_unsupported", f"not one of {', '.join(ALLOWED_FORMATS)}") from None
    except Exception as e:
        raise ImageError("image_decode", f"{type(e).__name__}: {e}") from None
    width, height = img.size
    if width * height > options.max_pixels:
        raise ImageError("image_too_large", f"{width}x{height} > max_pixels {options.max_pixels}")
    if min(width, height) < options.min_side:
        raise ImageError("image_too_small", f"{width}x{height}, min_side {options.min_side}")
    try:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
        return _to_l_or_rgb(img)
    except ImageError:
        raise
    except Exception as e:  # Pillow plugins raise OSError, SyntaxError, struct.error, ... on bad data
        raise ImageError("image_decode", f"{img.format} {img.mode}: {type(e).__name__}: {e}") from None


def _to_l_or_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in _HIGH_BIT_MODES:
        values = np.asarray(img)
        low, high = finite_range(values)
        return scale_to_uint8(values, low, high)
    if (mode == "P" and "transparency" in img.info) or mode == "PA":
        img = img.convert("RGBA")
    elif mode == "P":
        rgb = np.asarray(img.convert("RGB"))
        return rgb[..., 0].copy() if _is_grey(rgb) else rgb
    elif mode == "1":
        img = img.convert("L")
    elif mode == "La":
        img = img.convert("LA")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    elif mode not in ("L", "RGB", "LA", "RGBA"):
        try:
            img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX
        except ValueError as e:
            raise ImageError("image_unsupported", f"mode {mode}: {e}") from None
    pixels = np.asarray(img)
    if img.mode in ("LA", "RGBA"):
        pixels = _on_white(pixels)
    return pixels


def _is_grey(rgb: np.ndarray) -> bool:
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def _on_white(pixels: np.ndarray) -> np.ndarray:
    """Composite LA/RGBA pixels on a white background: transparent figure areas are paper, not black."""
    colour = pixels[..., :-1].astype(np.uint32)
    alpha = pixels[..., -1:].astype(np.uint32)
    out = (colour * alpha + _WHITE * (255 - alpha) + 127) // 255
    out = out.astype(np.uint8)
    return out[..., 0] if out.shape[-1] == 1 else out


def finite_range(values: np.ndarray) -> tuple[float, float]:
    """Min and max of the finite values (NaN/inf ignored); (0, 0) when there are none."""
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return 0.0, 0.0
    return float(finite.min()), float(finite.max())


def percentile_range(
    values: np.ndarray, percentiles: tuple[float, float], max_samples: int = 2_000_000
) -> tuple[float, float]:
    """Low/high intensity percentiles of the finite values; large arrays are sampled on a fixed stride."""
    flat = values.ravel(order="K")  # memory order: no copy for Fortran-ordered volumes
    if flat.size > max_samples:
        flat = flat[:: -(-flat.size // max_samples)]
    if flat.dtype.kind == "f":
        flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 0.0, 0.0
    low, high = np.percentile(flat, percentiles)
    return float(low), float(high)


def scale_to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly to 0..255, clipping outside. A flat window maps `> low` to 255, else 0."""
    if not high > low:
        return np.where(values > low, 255, 0).astype(np.uint8)
    scaled = (values.astype(np.float32) - np.float32(low)) * np.float32(255.0 / (high - low))
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.rint(np.clip(scaled, 0, 255)).astype(np.uint8)


def encode_array(pixels: np.ndarray, options: ImageOptions = ImageOptions()) -> EncodedImage:
    """Hash, resize and encode uint8 pixels (HxW -> L, HxWx3 -> RGB). Same input, same bytes."""
    if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"expected uint8 HxW or HxWx3 pixels, got {pixels.dtype} {pixels.shape}")
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    if min(width, height) < options.min_side:
        raise ImageError("image_too_small", f"{width}x{height}, min_side {options.min_side}")
    if width * height > options.max_pixels:
        raise ImageError("image_too_large", f"{width}x{height} > max_pixels {options.max_pixels}")
    mode = "L" if pixels.ndim == 2 else "RGB"
    digest = hashlib.sha256(f"{mode} {width}x{height}\n".encode())
    digest.update(pixels.data)

    img = Image.fromarray(pixels)
    longest = max(width, height)
    if longest > options.max_side:
        scale = options.max_side / longest
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    if options.format == "jpeg":
        img.save(buf, "JPEG", quality=options.jpeg_quality)
        extension = "jpg"
    else:
        img.save(buf, "PNG")
        extension = "png"
    return EncodedImage(
        data=buf.getvalue(),
        format=options.format,
        extension=extension,
        width=img.width,
        height=img.height,
        mode=mode,
        sha256=digest.hexdigest(),
    )


def normalize_image_bytes(data: bytes, options: ImageOptions = ImageOptions()) -> EncodedImage:
    """Decode a raster image and re-encode it the corpus way. Raises :class:`ImageError`."""
    return encode_array(decode_raster(data, options), options)
