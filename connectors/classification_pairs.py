"""From a classification sample to image records (captions are joined on later, per label set).

A sample can yield several images (DICOM frames, NIfTI slices); each becomes its own record. Images
come first, captions later, because captions are made per label set, not per image.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass

from connectors.classification import ClassificationSample, ManifestRowError, read_image_bytes, split_for
from connectors.dataset_card import label_set_key
from connectors.images import ImageError, ImageOptions
from connectors.medical_image import VolumePolicy, load_medical_image
from connectors.splits import SplitRatios
from schemas import PairRecord, RejectRecord

SOURCE = "classification"


@dataclass
class ImageRecord:
    """An image of a sample and the key of its label set, waiting for captions."""

    label_key: str
    record: PairRecord
    dicom_modality: str | None


def anonymous_name(relative_id: str) -> str:
    """A sample's name in every output: a hash of its path in the dataset, never the path itself. Folder
    and file names of medical datasets carry patient and study ids (CheXpert and MIMIC-CXR:
    `patients/patient00001/study1/view1_frontal.jpg`)."""
    return hashlib.sha256(relative_id.encode()).hexdigest()[:16]


def sample_id(dataset: str, sample: ClassificationSample) -> str:
    return record_id(dataset, sample.sample_id)


def record_id(dataset: str, relative_id: str) -> str:
    """`cls/<dataset>/<hash of the sample's path>`."""
    return f"cls/{dataset}/{anonymous_name(relative_id)}"


def _suffix(name: str) -> str:
    lower = name.lower()
    for double in (".nii.gz", ".mgh.gz"):
        if lower.endswith(double):
            return name[-len(double) :]
    return posixpath.splitext(name)[1]


def _scrub(text: str, sample: ClassificationSample, member: str) -> str:
    """An error detail without the sample's path or file name (the member name stands in)."""
    for exposed in (sample.uri, sample.sample_id, sample.image_name):
        if exposed:
            text = text.replace(exposed, member)
    return text


def group_id(dataset: str, sample: ClassificationSample) -> str:
    """A one-way id of the patient/study (or the sample), so the raw patient id never leaves."""
    key = sample.group if sample.group else f"sample:{sample.sample_id}"
    return hashlib.sha256(f"{dataset}\x00{key}".encode()).hexdigest()[:16]


def row_error_reject(dataset: str, error: ManifestRowError) -> RejectRecord:
    """The reject row of a dataset row that names no usable sample."""
    return RejectRecord(
        id=record_id(dataset, error.sample_id)
        if error.sample_id
        else f"cls/{dataset}/row-{error.row_number}",
        stage="samples",
        reason=error.reason,
        detail=f"{error.source} row {error.row_number}: {error.detail}",  # details never name the path
        source=SOURCE,
        source_uri=error.source,
    )


def _frame_tag(frame: str) -> str:
    """ "frame 12/40" -> "frame-12", "axial 30/60" -> "axial-30"."""
    name, _, position = frame.partition(" ")
    return f"{name}-{position.split('/')[0]}" if position else name


def image_records(
    dataset: str,
    sample: ClassificationSample,
    options: ImageOptions,
    policy: VolumePolicy,
    ratios: SplitRatios,
    source_uri: str | None = None,
) -> list[ImageRecord] | RejectRecord:
    """The sample's images as records. Provenance names the dataset (`source_uri`) and the sample's
    anonymous member name, never the image's own path."""
    base_id = sample_id(dataset, sample)
    member = anonymous_name(sample.sample_id) + _suffix(sample.image_name)
    try:
        data = (
            sample.image_bytes
            if sample.image_bytes is not None
            else read_image_bytes(sample, options.max_input_bytes)
        )
        images = load_medical_image(data, sample.image_name, options, policy)
    except ImageError as exc:
        return RejectRecord(
            id=base_id,
            stage="samples",
            reason=exc.reason,
            detail=_scrub(exc.detail, sample, member),
            source=SOURCE,
            source_uri=source_uri,
        )
    split = split_for(sample, ratios)
    group = group_id(dataset, sample)
    key = label_set_key(sample.labels)
    out = []
    for image in images:
        tag = _frame_tag(image.frame) if image.frame and len(images) > 1 else None
        image_id = f"{base_id}/{tag}" if tag else base_id
        stem = image_id.removeprefix(f"cls/{dataset}/").replace("/", "_")
        record = PairRecord(
            id=image_id,
            source=SOURCE,
            kind="image",
            image_bytes=image.image.data,
            image_path=f"{stem}.{image.image.extension}",
            image_sha256=image.image.sha256,
            image_stored=image.image.stored,
            width=image.image.width,
            height=image.image.height,
            caption="",
            class_labels=list(sample.labels),
            dataset=dataset,
            group_id=group,
            split=split,
            dicom=image.dicom,
            source_uri=source_uri,
            source_member=f"{member}#{image.frame}" if image.frame else member,
        )
        out.append(ImageRecord(key, record, image.dicom.modality if image.dicom else None))
    return out
