import io
from pathlib import Path

import nibabel as nib
import pydicom
import pytest
import skimage.data
from PIL import Image
from pydicom.data import get_testdata_file

from connectors.images import ImageError, ImageOptions, normalize_image_bytes
from connectors.medical_image import MedicalImage, VolumePolicy, detect_kind, load_medical_image

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def bare_dicom() -> bytes:
    """CT_small written as a bare dataset: no preamble, no "DICM", no file meta."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.file_meta
    ds.preamble = None
    buf = io.BytesIO()
    ds.save_as(buf, implicit_vr=True, little_endian=True)
    return buf.getvalue()


def test_detect_kind_by_magic_then_name():
    ct = read(get_testdata_file("CT_small.dcm"))
    nii = read(NIBABEL_DATA / "anatomical.nii")
    assert detect_kind(ct, "IM0001") == "dicom"  # the DICM preamble, whatever the name
    assert detect_kind(bare_dicom(), "slice.DCM") == "dicom"
    assert detect_kind(nii, "scan") == "volume"
    assert detect_kind(b"\x1f\x8b....", "scan.nii.gz") == "volume"
    assert detect_kind(b"....", "brain.mgz") == "volume"
    assert detect_kind(b"\x89PNG\r\n\x1a\n", "figure.png") == "raster"
    assert detect_kind(bare_dicom(), "IM0001") == "raster"  # no magic, no name: not recognisable


def test_dicom_dispatch():
    (result,) = load_medical_image(read(get_testdata_file("CT_small.dcm")), "IM0001")
    assert isinstance(result, MedicalImage) and result.dicom.modality == "CT" and result.frame is None
    (bare,) = load_medical_image(bare_dicom(), "ct.dcm")
    assert bare.image.sha256 == result.image.sha256


def test_volume_dispatch():
    results = load_medical_image(
        read(NIBABEL_DATA / "anatomical.nii"), "scan", ImageOptions(min_side=8), VolumePolicy(plane="coronal")
    )
    assert [r.frame for r in results] == ["coronal 21/41"]
    assert results[0].dicom is None


def test_raster_dispatch_is_the_plain_image_path():
    buf = io.BytesIO()
    Image.fromarray(skimage.data.camera()).save(buf, "PNG")
    (result,) = load_medical_image(buf.getvalue(), "camera.png")
    assert result.frame is None and result.dicom is None
    assert result.image == normalize_image_bytes(buf.getvalue())


def test_errors_keep_their_reason():
    with pytest.raises(ImageError) as err:
        load_medical_image(read(get_testdata_file("rtplan.dcm")), "plan.dcm")
    assert err.value.reason == "dicom_no_pixels"
    with pytest.raises(ImageError) as err:
        load_medical_image(b"plain text, not an image", "notes.txt")
    assert err.value.reason == "image_unsupported"


def test_volume_policy_is_validated():
    for bad in (
        {"plane": "oblique"},
        {"frame_step": 0},
        {"n_slices": 0},
        {"percentiles": (99.0, 1.0)},
        {"timepoint": -1},
    ):
        with pytest.raises(ValueError):
            VolumePolicy(**bad)
