"""Load any image file a dataset may hold (raster, DICOM, NIfTI and other nibabel volumes) as 2D images.

:func:`load_medical_image` looks at the bytes (DICOM preamble, NIfTI magic) and then at the file name
(``.dcm``, ``.nii``, ``.nii.gz``, ``.mgz``, ...); everything else goes to the raster decoder. A volume
or multi-frame file can yield several images; :class:`VolumePolicy` says which.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.images import EncodedImage, ImageOptions, normalize_image_bytes
from schemas.records import DicomMeta

PLANES = ("axial", "coronal", "sagittal")
DICOM_SUFFIXES = (".dcm", ".dicom")
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mgz", ".mgh", ".mnc")


@dataclass(frozen=True)
class VolumePolicy:
    """Which 2D images a multi-frame DICOM or a volume becomes, and how intensities are windowed."""

    frame_step: int | None = None  # DICOM multi-frame: None -> the middle frame; k -> frames 1, 1+k, ...
    plane: str = "axial"  # volumes: "axial" | "coronal" | "sagittal"
    n_slices: int = 1  # volumes: 1 -> the middle slice; N -> N evenly spaced slices
    percentiles: tuple[float, float] = (0.5, 99.5)  # intensity window when the file defines none
    timepoint: int = 0  # 4D volumes
    max_images: int = 64  # at most this many images from one file

    def __post_init__(self) -> None:
        if self.plane not in PLANES:
            raise ValueError(f"plane must be one of {PLANES}, got {self.plane!r}")
        if self.frame_step is not None and self.frame_step < 1:
            raise ValueError(f"frame_step must be >= 1 or None, got {self.frame_step}")
        if self.n_slices < 1 or self.max_images < 1 or self.timepoint < 0:
            raise ValueError("n_slices and max_images must be >= 1 and timepoint >= 0")
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")


@dataclass(frozen=True)
class MedicalImage:
    image: EncodedImage
    frame: str | None = None  # "frame 12/40", "axial 30/60"; None for a plain 2D image
    dicom: DicomMeta | None = None  # whitelisted, non-identifying DICOM attributes


def detect_kind(data: bytes, name: str) -> str:
    """ "dicom", "volume" or "raster", from the magic bytes first and the file name second."""
    lower = name.lower()
    if data[128:132] == b"DICM" or lower.endswith(DICOM_SUFFIXES):
        return "dicom"
    if data[344:348] == b"n+1\x00" or data[4:8] == b"n+2\x00" or lower.endswith(VOLUME_SUFFIXES):
        return "volume"
    return "raster"


def load_medical_image(
    data: bytes, name: str, options: ImageOptions = ImageOptions(), policy: VolumePolicy = VolumePolicy()
) -> list[MedicalImage]:
    """Decode one file into one or more normalised 2D images. Raises :class:`connectors.images.ImageError`."""
    kind = detect_kind(data, name)
    if kind == "dicom":
        from connectors.dicom import read_dicom  # pydicom loads only when a DICOM file shows up

        return read_dicom(data, options, policy)
    if kind == "volume":
        from connectors.nifti import read_volume

        return read_volume(data, name, options, policy)
    return [MedicalImage(normalize_image_bytes(data, options))]
