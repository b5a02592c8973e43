"""Raster decoding and normalised encoding: the one image path for every source.

PMC figures, classification images and the 2D slices that the DICOM and NIfTI readers produce all end
in one encoder (:func:`normalize_image_bytes` for files, :func:`encode_array` for pixel arrays), so every
image in a corpus has the same size limits, colour modes, encoder settings and content hash.

Decoding rules (:func:`decode_raster`):

* Pillow opens only the formats in ``ALLOWED_FORMATS`` (JPEG includes multi-picture MPO); anything else is ``image_unsupported`` (this
  also keeps Pillow from handing EPS/PS files to Ghostscript).
* The size in the header is checked against ``max_pixels`` before any pixel is decoded, so a
  decompression bomb costs a header parse, not memory.
* The first frame of multi-page TIFF / animated GIF is used; EXIF orientation is applied.
* A JPEG at least twice the output size is decoded at 1/2, 1/4 or 1/8 scale in the DCT domain
  (:func:`draft_jpeg`): the pixels that the resize would average away are never computed.
* Modes become ``L`` or ``RGB``: palette -> RGB (or L when the palette is grey), alpha composited on
  white, LA -> L, CMYK / YCbCr / LAB -> RGB, 1-bit -> L. 16-bit and 32-bit greyscale (``I;16*``, ``I``,
  ``F``) are stretched linearly from the image's own min/max to 0..255 (no clipping: a 16-bit image
  keeps its full range, only quantised).

Storing (:func:`normalize_image_bytes`): with ``keep_fitting_source``, a JPEG or PNG that already fits
(within ``max_side``, L or RGB, no EXIF rotation, no transparency, one frame) is stored as it came after a
full decode proved it sound: re-encoding it would only cost time and add a generation of JPEG loss.
``EncodedImage.stored`` says which happened.

``sha256`` is the hash of the pixels stored, with their shape and mode: after resizing, before the JPEG
encoder's loss (for a file kept as it came, its decoded pixels). The same file with the same options
always gives the same hash, which is what exact de-duplication needs; hashing the resized picture rather
than the source costs a third of the time on a typical PMC figure.
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
_ORIENTATION = 0x0112  # EXIF tag
_SWAPS_AXES = {5, 6, 7, 8}  # orientations that turn the stored image by 90 degrees

# What EncodedImage.stored (and the record's `image_stored`) says happened to an image.
STORED_SOURCE = "source"  # the source file's bytes, unchanged (it already fitted)
STORED_REENCODED = "reencoded"  # decoded in full, converted / resized, encoded with the corpus settings
STORED_REENCODED_DCT = "reencoded_dct"  # a JPEG decoded at 1/2-1/8 scale in the DCT domain, then as above


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
    format: str  # "jpeg" | "png": the format of `data`
    extension: str  # "jpg" | "png"
    width: int  # after resizing
    height: int
    mode: str  # "RGB" | "L"
    sha256: str  # of the stored pixels (after resizing, before encoding), with shape and mode: pixel_sha256
    stored: str = STORED_REENCODED  # STORED_SOURCE | STORED_REENCODED | STORED_REENCODED_DCT


def draft_jpeg(img: Image.Image, size: tuple[int, int]) -> int:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 scale in the DCT domain: the smallest scale at which both
    decoded sides stay at least `size`. Call before the pixels are loaded. Returns the scale (1: not a
    JPEG, or less than twice `size`). A DCT-scaled decode costs a fraction of a full one, and the resize
    that follows reads 4-64x fewer pixels."""
    if img.format not in ("JPEG", "MPO"):
        return 1
    width, height = img.size
    for scale in (8, 4, 2):
        # libjpeg's scaled output is ceil(side / scale); Pillow picks the scale from floor divisions, so
        # ask for exactly the floor sizes that make it pick this one.
        if -(-width // scale) >= size[0] and -(-height // scale) >= size[1]:
            img.draft(None, (width // scale, height // scale))  # None: keep the file's colour mode
            return scale if img.size != (width, height) else 1  # draft declines a multi-tile JPEG
    return 1


def pixel_sha256(img: Image.Image) -> str:
    """SHA-256 of L or RGB pixels with their mode and size: the same picture from any lossless file hashes
    the same, and two shapes of the same bytes do not."""
    digest = hashlib.sha256(f"{img.mode} {img.width}x{img.height}\n".encode())
    digest.update(img.tobytes())  # packed rows, byte-identical to the numpy array of the same image
    return digest.hexdigest()


def decode_raster(data: bytes, options: ImageOptions = ImageOptions()) -> np.ndarray:
    """Decode JPEG/PNG/GIF/TIFF/... bytes to uint8 pixels, HxW (greyscale) or HxWx3 (RGB), at full size."""
    img = _open(data, options)
    return np.asarray(_load_l_or_rgb(img, _orientation(img)))


def _open(data: bytes, options: ImageOptions) -> Image.Image:
    """Open and check the header: format, byte and pixel caps, minimum side. No pixel is decoded."""
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
    return img


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1-8; 1 is upright). For a PNG this decodes the pixels (its eXIf chunk may follow
    them), so a decode error surfaces here; it must not be swallowed, since a second load() is a no-op."""
    try:
        value = img.getexif().get(_ORIENTATION, 1)
    except Exception as e:
        raise ImageError("image_decode", f"{img.format} {img.mode}: {type(e).__name__}: {e}") from None
    return value if value in range(1, 9) else 1  # exif_transpose ignores other values too


def _load_l_or_rgb(img: Image.Image, orientation: int) -> Image.Image:
    """Decode the pixels, apply the EXIF rotation and convert to L or RGB."""
    try:
        img.load()
        if orientation != 1:
            ImageOps.exif_transpose(img, in_place=True)
        return _to_l_or_rgb(img)
    except ImageError:
        raise
    except Exception as e:  # Pillow plugins raise OSError, SyntaxError, struct.error, ... on bad data
        raise ImageError("image_decode", f"{img.format} {img.mode}: {type(e).__name__}: {e}") from None


def _to_l_or_rgb(img: Image.Image) -> Image.Image:
    # L and RGB (every ordinary JPEG and PNG) pass through untouched: no copy on the common path.
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode in _HIGH_BIT_MODES:
        values = np.asarray(img)
        low, high = finite_range(values)
        return Image.fromarray(scale_to_uint8(values, low, high))
    if (mode == "P" and "transparency" in img.info) or mode == "PA":
        img = img.convert("RGBA")
    elif mode == "P":
        rgb = np.asarray(img.convert("RGB"))
        return Image.fromarray(rgb[..., 0].copy() if _is_grey(rgb) else rgb)
    elif mode == "1":
        return img.convert("L")
    elif mode == "La":
        img = img.convert("LA")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    elif mode not in ("LA", "RGBA"):
        try:
            return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX
        except ValueError as e:
            raise ImageError("image_unsupported", f"mode {mode}: {e}") from None
    return Image.fromarray(_on_white(np.asarray(img)))


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
    height, width = pixels.shape[:2]
    if min(width, height) < options.min_side:
        raise ImageError("image_too_small", f"{width}x{height}, min_side {options.min_side}")
    if width * height > options.max_pixels:
        raise ImageError("image_too_large", f"{width}x{height} > max_pixels {options.max_pixels}")
    img = Image.fromarray(np.ascontiguousarray(pixels))
    return _encode(img, _fitted_size(img.size, options.max_side), STORED_REENCODED, options)


def normalize_image_bytes(
    data: bytes, options: ImageOptions = ImageOptions(), keep_fitting_source: bool = False
) -> EncodedImage:
    """Decode a raster image and encode it the corpus way. Raises :class:`ImageError`.

    `keep_fitting_source`: store a JPEG/PNG that already fits as it came (see the module docstring). Off
    by default: a source file keeps its metadata (EXIF, comments), which re-encoding drops; a caller
    turns it on where the files are published material (PMC figures), not a patient's images.
    """
    img = _open(data, options)
    orientation = _orientation(img)
    width, height = img.size
    if orientation in _SWAPS_AXES:
        width, height = height, width
    target = _fitted_size((width, height), options.max_side)
    if keep_fitting_source and target is None and _storable_as_is(img, orientation, options):
        pixels = _load_l_or_rgb(img, orientation)  # the full decode is the validation
        fmt = "jpeg" if img.format == "JPEG" else "png"
        return EncodedImage(
            data=data,
            format=fmt,
            extension="jpg" if fmt == "jpeg" else "png",
            width=pixels.width,
            height=pixels.height,
            mode=pixels.mode,
            sha256=pixel_sha256(pixels),
            stored=STORED_SOURCE,
        )
    scale = 1
    if target is not None:
        in_file = (target[1], target[0]) if orientation in _SWAPS_AXES else target
        scale = draft_jpeg(img, in_file)
    pixels = _load_l_or_rgb(img, orientation)
    stored = STORED_REENCODED if scale == 1 else STORED_REENCODED_DCT
    return _encode(pixels, target, stored, options)


def _storable_as_is(img: Image.Image, orientation: int, options: ImageOptions) -> bool:
    """A file whose bytes show exactly the pixels we would encode: L or RGB, upright, opaque, one frame.
    PNG output keeps only PNG sources (the user asked for lossless files, not just lossless content)."""
    formats = ("JPEG", "PNG") if options.format == "jpeg" else ("PNG",)
    return (
        img.format in formats
        and img.mode in ("L", "RGB")
        and orientation == 1
        and "transparency" not in img.info  # a tRNS colour key: viewers would show it transparent
        and getattr(img, "n_frames", 1) == 1  # APNG: viewers would animate it
    )


def _fitted_size(size: tuple[int, int], max_side: int) -> tuple[int, int] | None:
    """The output size with the longest side at `max_side` (aspect kept), or None when it already fits."""
    width, height = size
    longest = max(width, height)
    if longest <= max_side:
        return None
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _encode(
    img: Image.Image, size: tuple[int, int] | None, stored: str, options: ImageOptions
) -> EncodedImage:
    if size is not None and size != img.size:
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    sha256 = pixel_sha256(img)
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
        mode=img.mode,
        sha256=sha256,
        stored=stored,
    )
