import gzip
import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from connectors.images import ImageError, ImageOptions
from connectors.medical_image import VolumePolicy
from connectors.nifti import read_volume, slice_indices

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
LOSSLESS = ImageOptions(format="png", min_side=1)


def nifti_bytes(data: np.ndarray, affine: np.ndarray) -> bytes:
    return nib.Nifti1Image(data, affine).to_bytes()


def image_of(result) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(result.image.data)))


def only_image(data: bytes, name: str = "v.nii", **policy) -> np.ndarray:
    (result,) = read_volume(data, name, LOSSLESS, VolumePolicy(**policy))
    return image_of(result)


def marker_volume() -> np.ndarray:
    """A RAS+ volume (x: left->right, y: posterior->anterior, z: inferior->superior) holding one
    marker in each middle slice, each towards the patient's right / anterior / superior corner."""
    volume = np.zeros((10, 12, 14), np.float32)
    volume[8, 10, 7] = 1000  # axial middle slice (z=7): right and anterior
    volume[8, 6, 12] = 1000  # coronal middle slice (y=6): right and superior
    volume[5, 10, 12] = 1000  # sagittal middle slice (x=5): anterior and superior
    return volume


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_radiological_display_orientation(plane):
    """Axial: anterior up, patient right on the image left. Coronal: superior up, right on the left.
    Sagittal: superior up, anterior on the left. Every marker therefore lands at the top-left."""
    pixels = only_image(nifti_bytes(marker_volume(), np.eye(4)), plane=plane)
    expected_shape = {"axial": (12, 10), "coronal": (14, 10), "sagittal": (14, 12)}[plane]
    assert pixels.shape == expected_shape
    assert [tuple(p) for p in np.argwhere(pixels == 255)] == [(1, 1)]


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_storage_orientation_does_not_change_the_image(plane):
    ras = marker_volume()
    reference = only_image(nifti_bytes(ras, np.eye(4)), plane=plane)

    # The same voxels stored left-posterior-superior: x and y reversed, affine flipped to match.
    lps_affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps_affine[:3, 3] = (9, 11, 0)
    lps = only_image(nifti_bytes(ras[::-1, ::-1, :].copy(), lps_affine), plane=plane)
    np.testing.assert_array_equal(lps, reference)

    # Stored with axes permuted (z, x, y): the affine's columns are permuted with them.
    permuted_affine = np.eye(4)[:, [2, 0, 1, 3]]
    permuted = only_image(nifti_bytes(ras.transpose(2, 0, 1).copy(), permuted_affine), plane=plane)
    np.testing.assert_array_equal(permuted, reference)


def test_anisotropic_voxels_are_shown_with_their_physical_aspect():
    affine = np.diag([1.0, 1.0, 3.0, 1.0])  # 3 mm slices
    pixels = only_image(nifti_bytes(marker_volume(), affine), plane="coronal")
    assert pixels.shape == (14 * 3, 10)


def test_real_file_matches_a_manual_reorientation():
    data = (NIBABEL_DATA / "anatomical.nii").read_bytes()
    img = nib.load(NIBABEL_DATA / "anatomical.nii")
    assert nib.aff2axcodes(img.affine) == ("L", "A", "S")
    ras = img.get_fdata()[::-1, :, :]  # L->R: reverse x
    low, high = np.percentile(ras, (0.5, 99.5))
    expected = np.clip((ras[:, :, 12].T[::-1, ::-1] - low) / (high - low), 0, 1) * 255

    pixels = only_image(data)
    assert pixels.shape == (41, 33)
    assert np.abs(pixels.astype(int) - np.rint(expected)).max() <= 1
    assert pixels.min() == 0 and pixels.max() == 255


def test_real_file_reoriented_on_disk_gives_the_same_slices():
    img = nib.load(NIBABEL_DATA / "anatomical.nii")
    reoriented = img.as_reoriented(nib.orientations.axcodes2ornt(("P", "I", "R")))
    for plane in ("axial", "coronal", "sagittal"):
        original = read_volume(img.to_bytes(), "a.nii", LOSSLESS, VolumePolicy(plane=plane, n_slices=3))
        moved = read_volume(reoriented.to_bytes(), "b.nii", LOSSLESS, VolumePolicy(plane=plane, n_slices=3))
        assert [r.image.data for r in original] == [r.image.data for r in moved]
        assert [r.frame for r in original] == [r.frame for r in moved]


def test_evenly_spaced_slices_and_labels():
    assert slice_indices(60, 1) == [30]
    assert slice_indices(25, 1) == [12]
    assert slice_indices(60, 3) == [15, 30, 44]
    assert slice_indices(3, 10) == [0, 1, 2]
    results = read_volume(
        (NIBABEL_DATA / "anatomical.nii").read_bytes(), "a.nii", LOSSLESS, VolumePolicy(n_slices=3)
    )
    assert [r.frame for r in results] == ["axial 7/25", "axial 13/25", "axial 19/25"]
    assert len({r.image.sha256 for r in results}) == 3


def test_4d_volume_uses_the_chosen_timepoint():
    data = (NIBABEL_DATA / "example4d.nii.gz").read_bytes()
    four_d = nib.load(NIBABEL_DATA / "example4d.nii.gz")
    first = only_image(data, "e.nii.gz")
    second = only_image(data, "e.nii.gz", timepoint=1)
    assert first.shape == second.shape and not np.array_equal(first, second)
    single = nib.Nifti1Image(four_d.get_fdata()[..., 1], four_d.affine).to_bytes()
    np.testing.assert_array_equal(second, only_image(single))
    with pytest.raises(ImageError) as err:
        read_volume(data, "e.nii.gz", LOSSLESS, VolumePolicy(timepoint=2))
    assert err.value.reason == "volume_timepoint"


@pytest.mark.parametrize("name", ["standard.nii.gz", "test.mgz", "tiny.mnc", "example_nifti2.nii.gz"])
def test_other_real_files_load(name):
    results = read_volume((NIBABEL_DATA / name).read_bytes(), name, LOSSLESS, VolumePolicy(n_slices=2))
    assert 1 <= len(results) <= 2
    assert all(r.frame.startswith("axial ") and r.image.mode == "L" for r in results)


def test_gzip_size_is_capped():
    data = (NIBABEL_DATA / "example4d.nii.gz").read_bytes()
    inflated = len(gzip.decompress(data))
    with pytest.raises(ImageError) as err:
        read_volume(data, "e.nii.gz", ImageOptions(max_input_bytes=inflated - 1))
    assert err.value.reason == "image_too_large"
    assert read_volume(data, "e.nii.gz", ImageOptions(max_input_bytes=inflated))


def test_voxel_cap():
    data = (NIBABEL_DATA / "anatomical.nii").read_bytes()
    with pytest.raises(ImageError) as err:
        read_volume(data, "a.nii", ImageOptions(max_pixels=33 * 41 * 25 - 1, min_side=1))
    assert err.value.reason == "image_too_large"


def test_corrupt_volumes():
    nii = (NIBABEL_DATA / "anatomical.nii").read_bytes()
    gz = (NIBABEL_DATA / "example4d.nii.gz").read_bytes()
    for data, name in [
        (nii[: len(nii) // 2], "a.nii"),
        (gz[: len(gz) // 2], "e.nii.gz"),
        (b"\x1f\x8b" + b"\x00" * 100, "e.nii.gz"),
        (np.random.default_rng(0).bytes(1000), "x.nii"),
        ((NIBABEL_DATA / "test.mgz").read_bytes()[:200], "t.mgz"),
    ]:
        with pytest.raises(ImageError) as err:
            read_volume(data, name, LOSSLESS)
        assert err.value.reason == "nifti_decode", (name, err.value)
