import io

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut
from pydicom.sequence import Sequence

from connectors.dicom import read_dicom
from connectors.images import ImageError, ImageOptions
from connectors.medical_image import VolumePolicy
from schemas.records import PairRecord, pairs_to_table

LOSSLESS = ImageOptions(format="png", min_side=1)


def dicom_bytes(name: str) -> bytes:
    with open(get_testdata_file(name), "rb") as f:
        return f.read()


def dicom_dataset(name: str) -> Dataset:
    return pydicom.dcmread(get_testdata_file(name))


def to_bytes(ds: Dataset, **kwargs) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, **kwargs)
    return buf.getvalue()


def pixels(
    data: bytes, options: ImageOptions = LOSSLESS, policy: VolumePolicy = VolumePolicy()
) -> np.ndarray:
    (result,) = read_dicom(data, options, policy)
    return np.asarray(Image.open(io.BytesIO(result.image.data)))


def reason(data: bytes, options: ImageOptions = LOSSLESS) -> str:
    with pytest.raises(ImageError) as err:
        read_dicom(data, options)
    return err.value.reason


def test_ct_window_is_applied_to_rescaled_values():
    ds = dicom_dataset("CT_small.dcm")
    ds.WindowCenter, ds.WindowWidth = 40, 400  # a soft-tissue window, in Hounsfield units
    out = pixels(to_bytes(ds))

    raw = ds.pixel_array.astype(np.float64)
    hu = raw * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = np.rint(np.clip((hu - 39.5) / 399 + 0.5, 0, 1) * 255)  # DICOM PS3.3 C.11.2.1.2 linear
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert out.min() == 0 and out.max() == 255  # the window spans the whole output range

    without_rescale = np.rint(np.clip((raw - 39.5) / 399 + 0.5, 0, 1) * 255)
    assert np.abs(out.astype(int) - without_rescale).mean() > 50


def test_percentile_window_when_the_file_has_none():
    ds = dicom_dataset("CT_small.dcm")
    assert "WindowCenter" not in ds
    out = pixels(dicom_bytes("CT_small.dcm"))
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    low, high = np.percentile(hu, (0.5, 99.5))
    expected = np.rint(np.clip((hu - low) / (high - low), 0, 1) * 255)
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert out.min() == 0 and out.max() == 255


def test_voi_lut_sequence_is_used_and_its_output_range_mapped_to_0_255():
    ds = dicom_dataset("CT_small.dcm")
    item = Dataset()
    entries = np.arange(4095, 95, -10, dtype=np.uint16)  # 400 entries, a decreasing ramp
    item.LUTDescriptor = [len(entries), -200, 16]  # first mapped value: HU -200
    item.LUTData = entries.tolist()
    item["LUTDescriptor"].VR = "SS"
    item["LUTData"].VR = "US"
    ds.VOILUTSequence = Sequence([item])
    out = pixels(to_bytes(ds))

    hu = ds.pixel_array.astype(np.int64) - 1024
    index = np.clip(hu + 200, 0, len(entries) - 1)
    expected = np.rint((entries[index] - 105.0) / (4095 - 105) * 255)
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert out.max() == 255


def test_monochrome1_is_inverted():
    normal = pixels(dicom_bytes("CT_small.dcm"))
    ds = dicom_dataset("CT_small.dcm")
    ds.PhotometricInterpretation = "MONOCHROME1"  # pydicom ships no MONOCHROME1 file: we make one
    inverted = pixels(to_bytes(ds))
    np.testing.assert_array_equal(inverted, 255 - normal)
    assert normal[0, 0] < 50 and inverted[0, 0] > 205  # air: dark in MONOCHROME2, bright in MONOCHROME1


@pytest.mark.parametrize(
    "name",
    ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_expb.dcm"],
)
def test_lossless_encodings_give_the_same_image(name):
    np.testing.assert_array_equal(pixels(dicom_bytes(name)), pixels(dicom_bytes("MR_small.dcm")))


def test_compressed_nm_files_decode():
    for name in ("JPEG2000.dcm", "JPGExtended.dcm"):
        (result,) = read_dicom(dicom_bytes(name))
        assert (result.image.width, result.image.height, result.image.mode) == (256, 1024, "L")
        assert result.dicom.modality == "NM"


def test_ybr_and_rgb_files_give_the_same_colours():
    reference = pixels(dicom_bytes("SC_rgb_rle.dcm")).astype(int)
    assert reference.shape == (100, 100, 3)
    for name, tolerance in [
        ("SC_ybr_full_422_uncompressed.dcm", 2),
        ("SC_rgb_dcmtk_+eb+cy+n1.dcm", 4),  # JPEG baseline, YBR_FULL
        ("SC_rgb_jpeg_dcmtk.dcm", 4),
    ]:
        assert np.abs(pixels(dicom_bytes(name)).astype(int) - reference).mean() < tolerance, name


def test_16bit_rgb_keeps_its_top_8_bits():
    np.testing.assert_array_equal(
        pixels(dicom_bytes("SC_rgb_rle_16bit.dcm")), pixels(dicom_bytes("SC_rgb_rle.dcm"))
    )


def test_palette_colour_goes_through_its_lookup_tables():
    ds = dicom_dataset("examples_palette.dcm")
    expected = (apply_color_lut(ds.pixel_array, ds) >> 8).astype(np.uint8)
    np.testing.assert_array_equal(
        pixels(dicom_bytes("examples_palette.dcm"), ImageOptions(format="png")), expected
    )


def test_multiframe_middle_frame_and_every_kth():
    data = dicom_bytes("SC_rgb_rle_2frame.dcm")
    (middle,) = read_dicom(data, LOSSLESS)
    assert middle.frame == "frame 2/2"
    first, second = read_dicom(data, LOSSLESS, VolumePolicy(frame_step=1))
    assert (first.frame, second.frame) == ("frame 1/2", "frame 2/2")
    assert second.image.data == middle.image.data
    frames = dicom_dataset("SC_rgb_rle_2frame.dcm").pixel_array
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(first.image.data))), frames[0])

    dose = read_dicom(dicom_bytes("rtdose.dcm"), LOSSLESS, VolumePolicy(frame_step=4))
    assert [r.frame for r in dose] == ["frame 1/15", "frame 5/15", "frame 9/15", "frame 13/15"]
    assert len(read_dicom(dicom_bytes("rtdose.dcm"), LOSSLESS, VolumePolicy(frame_step=1, max_images=3))) == 3


def test_missing_codec_is_reported():
    ds = dicom_dataset("MR_small_RLE.dcm")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"  # MPEG-4: pydicom has no decoder for video
    with pytest.raises(ImageError) as err:
        read_dicom(to_bytes(ds))
    assert err.value.reason == "dicom_codec_missing"
    assert "MPEG-4" in err.value.detail


def test_burned_in_annotation_is_rejected():
    ds = dicom_dataset("CT_small.dcm")
    ds.BurnedInAnnotation = "YES"
    assert reason(to_bytes(ds)) == "dicom_burned_in_annotation"
    ds.BurnedInAnnotation = "NO"
    assert len(read_dicom(to_bytes(ds), LOSSLESS)) == 1


def test_files_without_pixels():
    for name in ("rtplan.dcm", "test-SR.dcm", "rtstruct.dcm"):
        assert reason(dicom_bytes(name)) == "dicom_no_pixels", name


def test_corrupt_and_truncated_files():
    ct = dicom_bytes("CT_small.dcm")
    assert reason(dicom_bytes("MR_truncated.dcm")) == "dicom_decode"
    assert reason(ct[: len(ct) // 2]) == "dicom_decode"
    assert reason(np.random.default_rng(0).bytes(4000)) == "dicom_decode"
    assert reason(dicom_bytes("JPEG-lossy.dcm")) == "dicom_decode"  # a 12-bit JPEG no installed plugin reads


def test_size_caps():
    ct = dicom_bytes("CT_small.dcm")
    assert reason(ct, ImageOptions(max_pixels=128 * 128 - 1, min_side=1)) == "image_too_large"
    assert reason(ct, ImageOptions(max_input_bytes=len(ct) - 1)) == "image_too_large"
    assert reason(ct, ImageOptions(min_side=129)) == "image_too_small"


def test_deflated_body_is_capped_before_inflating():
    data = dicom_bytes("image_dfl.dcm")  # 4.6 kB on disk, 256 kB of pixels inflated
    assert read_dicom(data)[0].image.width == 512
    assert reason(data, ImageOptions(max_input_bytes=len(data) + 1000)) == "image_too_large"


def test_dataset_without_file_meta_reads_like_the_full_file():
    ds = dicom_dataset("CT_small.dcm")
    del ds.file_meta
    ds.preamble = None
    bare = to_bytes(ds, implicit_vr=True, little_endian=True)
    assert bare[128:132] != b"DICM"
    np.testing.assert_array_equal(pixels(bare), pixels(dicom_bytes("CT_small.dcm")))


def test_meta_is_whitelisted():
    (result,) = read_dicom(dicom_bytes("CT_small.dcm"))
    meta = result.dicom
    assert (meta.modality, meta.photometric_interpretation, meta.rows, meta.columns) == (
        "CT",
        "MONOCHROME2",
        128,
        128,
    )
    assert meta.pixel_spacing == pytest.approx([0.661468, 0.661468])
    assert meta.manufacturer_model == "RHAPSODE"


PHI = {
    "PatientName": "Quizzlewick^Ottoline",
    "PatientID": "PID-88442211",
    "PatientBirthDate": "19230405",
    "AccessionNumber": "ACC557799",
    "InstitutionName": "Vexillum Memorial Clinic",
    "ReferringPhysicianName": "Umbraculo^Fennimore",
    "StudyDate": "20011231",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.777123",
}


def test_no_identifying_attribute_reaches_a_parquet_shard(tmp_path):
    ds = dicom_dataset("CT_small.dcm")
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    sop_uid = str(ds.SOPInstanceUID)
    (result,) = read_dicom(to_bytes(ds))

    record = PairRecord(
        id="cls/test/ct/0",
        source="classification",
        kind="image",
        image_bytes=result.image.data,
        image_sha256=result.image.sha256,
        width=result.image.width,
        height=result.image.height,
        caption="A CT slice.",
        image_path=f"ct.{result.image.extension}",
        dicom=result.dicom,
    )
    path = tmp_path / "shard.parquet"
    pq.write_table(pairs_to_table([record]), path, compression="none")  # uncompressed: strings stay visible
    written = path.read_bytes()
    assert b"RHAPSODE" in written  # the whitelisted attributes are there, so a leak would be seen too
    for value in [*PHI.values(), sop_uid, "CompressedSamples", "JFK IMAGING"]:
        assert value.encode() not in written, value
        assert value.encode("utf-16-le") not in written, value
