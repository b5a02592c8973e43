import hashlib
import io
import struct
import warnings
import zlib

import numpy as np
import pytest
import skimage.data
from PIL import Image

from connectors.images import (
    STORED_REENCODED,
    STORED_REENCODED_DCT,
    STORED_SOURCE,
    ImageError,
    ImageOptions,
    decode_raster,
    draft_jpeg,
    encode_array,
    normalize_image_bytes,
)

LOSSLESS = ImageOptions(format="png", max_side=4096)


def save(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def decoded(encoded) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(encoded.data)))


@pytest.fixture(scope="module")
def ihc() -> np.ndarray:
    return skimage.data.immunohistochemistry()  # 512x512 RGB


def test_same_picture_as_png_and_tiff_hashes_the_same(ihc):
    png = normalize_image_bytes(save(Image.fromarray(ihc), "PNG"))
    tiff = normalize_image_bytes(save(Image.fromarray(ihc), "TIFF", compression="tiff_lzw"))
    assert png.sha256 == tiff.sha256
    assert png.data == tiff.data
    other = normalize_image_bytes(save(Image.fromarray(ihc[:, ::-1].copy()), "PNG"))
    assert other.sha256 != png.sha256


def test_hash_is_of_the_stored_pixels(ihc):
    """With lossless output the record's hash can be checked from its own image bytes, resized or not."""
    from connectors.images import pixel_sha256

    for options in (LOSSLESS, ImageOptions(format="png", max_side=300)):
        out = normalize_image_bytes(save(Image.fromarray(ihc), "PNG"), options)
        assert out.sha256 == pixel_sha256(Image.open(io.BytesIO(out.data)))
    assert out.width == 300


def test_hash_includes_shape():
    flat = np.zeros((64, 128), np.uint8)
    assert encode_array(flat).sha256 != encode_array(flat.reshape(128, 64)).sha256


def test_lossless_png_roundtrip_keeps_pixels(ihc):
    out = normalize_image_bytes(save(Image.fromarray(ihc), "PNG"), LOSSLESS)
    assert (out.format, out.extension, out.mode, out.width, out.height) == ("png", "png", "RGB", 512, 512)
    np.testing.assert_array_equal(decoded(out), ihc)


def test_jpeg_output_is_deterministic_and_a_real_jpeg(ihc):
    data = save(Image.fromarray(ihc), "PNG")
    first, second = normalize_image_bytes(data), normalize_image_bytes(data)
    assert first.data == second.data and first.sha256 == second.sha256
    assert first.data[:3] == b"\xff\xd8\xff" and first.extension == "jpg"
    assert np.abs(decoded(first).astype(int) - ihc).mean() < 4  # quality 90


def test_resize_keeps_aspect_and_greyscale_stays_l():
    cell = skimage.data.cell()  # 660 rows x 550 columns, greyscale
    out = normalize_image_bytes(save(Image.fromarray(cell), "PNG"), ImageOptions(max_side=256))
    assert (out.width, out.height, out.mode) == (213, 256, "L")
    assert decoded(out).shape == (256, 213)


def test_retina_is_capped_at_max_side():
    retina = skimage.data.retina()[::2, ::2]  # 706x706 RGB
    out = normalize_image_bytes(save(Image.fromarray(retina), "JPEG", quality=95), ImageOptions(max_side=300))
    assert (out.width, out.height, out.mode) == (300, 300, "RGB")


def test_16bit_tiff_is_stretched_from_its_min_max_to_0_255():
    values = np.linspace(1000, 3000, 64 * 64).reshape(64, 64).astype(np.uint16)
    img = Image.fromarray(values)
    assert img.mode.startswith("I;16")
    pixels = decode_raster(save(img, "TIFF"))
    expected = np.rint((values.astype(np.float64) - 1000) * 255 / 2000).astype(np.uint8)
    assert pixels.dtype == np.uint8 and pixels.min() == 0 and pixels.max() == 255
    np.testing.assert_allclose(pixels.astype(int), expected.astype(int), atol=1)


def test_float_tiff_with_nan_is_scaled_from_its_finite_range():
    values = np.linspace(-1.0, 1.0, 48 * 48, dtype=np.float32).reshape(48, 48)
    values[0, 0] = np.nan
    pixels = decode_raster(save(Image.fromarray(values, "F"), "TIFF"))
    assert pixels[0, 1] == 0 and pixels[-1, -1] == 255


def test_multipage_tiff_gives_first_page():
    pages = [Image.new("L", (40, 40), 10), Image.new("L", (40, 40), 200)]
    data = save(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert set(np.unique(decode_raster(data))) == {10}


def test_cmyk_becomes_rgb():
    cyan = Image.new("CMYK", (40, 40), (255, 0, 0, 0))
    pixels = decode_raster(save(cyan, "TIFF"))
    assert pixels.shape == (40, 40, 3)
    assert tuple(pixels[0, 0]) == (0, 255, 255)


def test_colour_palette_becomes_rgb_and_grey_palette_becomes_l():
    colour = Image.new("P", (40, 40), 1)
    colour.putpalette([0, 0, 0, 200, 30, 10] + [0] * 762)
    pixels = decode_raster(save(colour, "GIF"))
    assert pixels.shape == (40, 40, 3) and tuple(pixels[5, 5]) == (200, 30, 10)

    grey = Image.new("P", (40, 40), 1)
    grey.putpalette([0, 0, 0, 77, 77, 77] + [0] * 762)
    pixels = decode_raster(save(grey, "PNG"))
    assert pixels.shape == (40, 40) and pixels[5, 5] == 77


def test_animated_gif_gives_first_frame():
    frames = [Image.new("L", (40, 40), 30), Image.new("L", (40, 40), 220)]
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert int(np.median(decode_raster(data))) == 30


def test_alpha_is_composited_on_white():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[:, :20] = (0, 0, 0, 0)  # fully transparent: paper
    rgba[:, 20:] = (0, 0, 0, 128)  # half-transparent black: mid grey
    pixels = decode_raster(save(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert pixels.shape == (40, 40, 3)
    assert tuple(pixels[0, 0]) == (255, 255, 255)
    assert tuple(pixels[0, 30]) == (127, 127, 127)

    la = Image.fromarray(np.dstack([np.full((40, 40), 0, np.uint8), np.full((40, 40), 0, np.uint8)]), "LA")
    assert decode_raster(save(la, "PNG"))[0, 0] == 255

    transparent_palette = Image.new("P", (40, 40), 0)
    transparent_palette.putpalette([10, 10, 10] + [0] * 765)
    assert tuple(decode_raster(save(transparent_palette, "PNG", transparency=0))[0, 0]) == (255, 255, 255)


def test_exif_orientation_is_applied():
    img = Image.new("L", (40, 60), 0)  # 40 wide, 60 high, marker at the top-left
    img.putpixel((0, 0), 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    pixels = decode_raster(save(img, "PNG", exif=exif))
    assert pixels.shape == (40, 60)
    assert [tuple(p) for p in np.argwhere(pixels == 255)] == [(0, 59)]


def png_with_header_size(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height but whose pixel data is for 1x1: decoding would fail."""
    data = bytearray(save(Image.new("L", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize("side", [10_000, 1_000_000])  # over our cap; over twice Pillow's own limit
def test_decompression_bomb_is_rejected_from_the_header(side):
    data = png_with_header_size(side, side)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ImageError) as err:
        decode_raster(data)
    assert err.value.reason == "image_too_large"  # not "image_decode": the pixels were never decoded
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_pixel_cap_is_exact():
    data = save(Image.new("L", (100, 50)), "PNG")
    assert decode_raster(data, ImageOptions(max_pixels=5000)).shape == (50, 100)
    with pytest.raises(ImageError) as err:
        decode_raster(data, ImageOptions(max_pixels=4999))
    assert err.value.reason == "image_too_large"
    with pytest.raises(ImageError) as err:
        decode_raster(data, ImageOptions(max_input_bytes=len(data) - 1))
    assert err.value.reason == "image_too_large"


def test_small_images_are_rejected():
    with pytest.raises(ImageError) as err:
        normalize_image_bytes(save(Image.new("RGB", (31, 400)), "PNG"))
    assert err.value.reason == "image_too_small"
    assert normalize_image_bytes(save(Image.new("RGB", (32, 400)), "PNG")).width == 32


def test_truncated_and_corrupt_images_are_decode_errors(ihc):
    jpeg = save(Image.fromarray(ihc), "JPEG")
    png = save(Image.fromarray(ihc), "PNG")
    corrupt_png = bytearray(png)
    corrupt_png[200:260] = b"\x00" * 60
    for data in (
        jpeg[: len(jpeg) // 2],
        png[: len(png) // 2],
        bytes(corrupt_png),
        b"\x89PNG\r\n\x1a\n" + b"x" * 50,
    ):
        with pytest.raises(ImageError) as err:
            decode_raster(data)
        assert err.value.reason == "image_decode", err.value


def test_unsupported_inputs():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n"
    for data in (b"%PDF-1.7\n" + b"0" * 100, eps, b"", np.random.default_rng(0).bytes(1000)):
        with pytest.raises(ImageError) as err:
            decode_raster(data)
        assert err.value.reason == "image_unsupported"


def test_encode_array_checks_its_input():
    with pytest.raises(ValueError):
        encode_array(np.zeros((40, 40), np.uint16))
    with pytest.raises(ValueError):
        encode_array(np.zeros((40, 40, 4), np.uint8))
    with pytest.raises(ValueError):
        ImageOptions(format="webp")


# --- decoding no more than needed, storing what already fits -------------------------------------------


def pixel_hash(pixels: np.ndarray) -> str:
    """The documented meaning of `sha256`, computed independently: mode, size, then the packed pixels."""
    mode = "L" if pixels.ndim == 2 else "RGB"
    header = f"{mode} {pixels.shape[1]}x{pixels.shape[0]}\n".encode()
    return hashlib.sha256(header + np.ascontiguousarray(pixels).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def retina() -> np.ndarray:
    return skimage.data.retina()  # 1411x1411 RGB fundus photograph


def big_jpeg(retina: np.ndarray, size: tuple[int, int]) -> bytes:
    return save(Image.fromarray(retina).resize(size, Image.Resampling.BICUBIC), "JPEG", quality=92)


def test_a_jpeg_twice_the_target_is_decoded_at_a_reduced_dct_scale(retina):
    data = big_jpeg(retina, (2400, 1600))
    img = Image.open(io.BytesIO(data))
    assert draft_jpeg(img, (1024, 683)) == 2
    img.load()
    assert img.size == (1200, 800)  # the decoder itself produced half the pixels

    out = normalize_image_bytes(data)
    assert (out.width, out.height, out.stored) == (1024, 683, STORED_REENCODED_DCT)
    # The same picture as a full decode resized the ordinary way: DCT scaling costs no visible quality.
    full = Image.open(io.BytesIO(data)).resize((1024, 683), Image.Resampling.LANCZOS)
    assert np.abs(decoded(out).astype(int) - np.asarray(full, dtype=int)).mean() < 3
    # Hashed as stored (the resized picture): stable, and distinct per picture.
    assert out.sha256 == normalize_image_bytes(data).sha256
    assert out.sha256 != normalize_image_bytes(big_jpeg(retina[::-1].copy(), (2400, 1600))).sha256


def test_less_than_twice_the_target_or_not_a_jpeg_decodes_in_full(retina):
    img = Image.open(io.BytesIO(big_jpeg(retina, (2000, 1400))))
    assert draft_jpeg(img, (1024, 717)) == 1 and img.size == (2000, 1400)
    out = normalize_image_bytes(big_jpeg(retina, (2000, 1400)))
    assert (out.width, out.height, out.stored) == (1024, 717, STORED_REENCODED)
    png = Image.open(io.BytesIO(save(Image.fromarray(retina), "PNG")))
    assert draft_jpeg(png, (300, 300)) == 1 and png.size == (1411, 1411)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_fitting_jpeg_or_png_is_stored_as_it_came(ihc, fmt, mode):
    source = save(Image.fromarray(ihc).convert(mode), fmt)
    out = normalize_image_bytes(source, keep_fitting_source=True)
    assert out.data == source
    assert out.stored == STORED_SOURCE
    assert (out.format, out.extension) == (("jpeg", "jpg") if fmt == "JPEG" else ("png", "png"))
    assert (out.width, out.height, out.mode) == (512, 512, mode)
    # The hash keeps its meaning: of the decoded pixels, equal to what the re-encoding path computes.
    assert out.sha256 == pixel_hash(decode_raster(source)) == normalize_image_bytes(source).sha256


def test_re_encoding_stays_the_default(ihc):
    source = save(Image.fromarray(ihc), "JPEG")
    out = normalize_image_bytes(source)
    assert out.stored == STORED_REENCODED and out.data != source


def test_png_output_keeps_a_fitting_png_but_not_a_jpeg(ihc):
    png = save(Image.fromarray(ihc), "PNG")
    assert normalize_image_bytes(png, LOSSLESS, keep_fitting_source=True).data == png
    out = normalize_image_bytes(save(Image.fromarray(ihc), "JPEG"), LOSSLESS, keep_fitting_source=True)
    assert (out.stored, out.format, out.data[:4]) == (STORED_REENCODED, "png", b"\x89PNG")


def rotated_jpeg() -> bytes:
    img = Image.new("L", (40, 60), 0)
    img.putpixel((0, 0), 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    return save(img, "JPEG", exif=exif, quality=100)


def test_what_a_viewer_would_show_differently_is_re_encoded(ihc):
    cmyk = save(Image.fromarray(ihc).convert("CMYK"), "JPEG")
    transparent = save(Image.fromarray(ihc), "PNG", transparency=(0, 0, 0))
    palette = save(Image.fromarray(ihc).quantize(64), "PNG")
    animated = save(
        Image.new("RGB", (40, 40), "red"), "PNG", save_all=True, append_images=[Image.new("RGB", (40, 40))]
    )
    oversize = save(Image.fromarray(ihc), "JPEG")
    for data, options in [
        (rotated_jpeg(), ImageOptions()),
        (cmyk, ImageOptions()),
        (transparent, ImageOptions()),
        (palette, ImageOptions()),
        (animated, ImageOptions()),
        (oversize, ImageOptions(max_side=300)),
    ]:
        out = normalize_image_bytes(data, options, keep_fitting_source=True)
        assert out.stored == STORED_REENCODED and out.data != data
        assert out.mode in ("L", "RGB") and max(out.width, out.height) <= options.max_side
    upright = normalize_image_bytes(rotated_jpeg(), keep_fitting_source=True)
    assert (upright.width, upright.height) == (60, 40)  # the rotation was applied before encoding
    assert normalize_image_bytes(cmyk, keep_fitting_source=True).mode == "RGB"


def test_files_that_would_be_kept_are_still_checked_and_rejected_with_reasons(ihc):
    jpeg = save(Image.fromarray(ihc), "JPEG")
    png = save(Image.fromarray(ihc), "PNG")
    corrupt_png = bytearray(png)
    corrupt_png[200:260] = b"\x00" * 60
    cases = [
        (
            jpeg[: len(jpeg) // 2],
            ImageOptions(),
            "image_decode",
        ),  # header fine, data cut: the full decode finds it
        (bytes(corrupt_png), ImageOptions(), "image_decode"),
        (png_with_header_size(10_000, 10_000), ImageOptions(max_side=20_000), "image_too_large"),
        (save(Image.new("RGB", (31, 400)), "JPEG"), ImageOptions(), "image_too_small"),
        (jpeg, ImageOptions(max_input_bytes=len(jpeg) - 1), "image_too_large"),
        (jpeg, ImageOptions(max_pixels=512 * 512 - 1), "image_too_large"),
        (b"%PDF-1.7\n" + b"0" * 100, ImageOptions(), "image_unsupported"),
    ]
    for data, options, reason in cases:
        with pytest.raises(ImageError) as err:
            normalize_image_bytes(data, options, keep_fitting_source=True)
        assert err.value.reason == reason, (reason, err.value)
