"""From a classification sample to image records (captions are joined on later, per label set).

A sample can yield several images (DICOM frames, NIfTI slices); each becomes its own record. Images
come first, captions later, because captions are made per label set, not per image.
"""

from __future__ import annotations

import hashlib
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


def sample_id(dataset: str, sample: ClassificationSample) -> str:
    return f"cls/{dataset}/{sample.sample_id}"


def group_id(dataset: str, sample: ClassificationSample) -> str:
    """A one-way id of the patient/study (or the sample), so the raw patient id never leaves."""
    key = sample.group if sample.group else f"sample:{sample.sample_id}"
    return hashlib.sha256(f"{dataset}\x00{key}".encode()).hexdigest()[:16]


def row_error_reject(dataset: str, error: ManifestRowError) -> RejectRecord:
    """The reject row of a dataset row that names no usable sample."""
    return RejectRecord(
        id=f"cls/{dataset}/{error.sample_id or f'row-{error.row_number}'}",
        stage="samples",
        reason=error.reason,
        detail=f"{error.source} row {error.row_number}: {error.detail}",
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
) -> list[ImageRecord] | RejectRecord:
    base_id = sample_id(dataset, sample)
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
            detail=exc.detail,
            source=SOURCE,
            source_uri=sample.uri,
        )
    split = split_for(sample, ratios)
    group = group_id(dataset, sample)
    key = label_set_key(sample.labels)
    out = []
    for image in images:
        tag = _frame_tag(image.frame) if image.frame and len(images) > 1 else None
        record_id = f"{base_id}/{tag}" if tag else base_id
        stem = record_id.rsplit("/", 1)[-1] if tag else sample.sample_id.rsplit("/", 1)[-1]
        record = PairRecord(
            id=record_id,
            source=SOURCE,
            kind="image",
            image_bytes=image.image.data,
            image_path=f"{stem}.{image.image.extension}",
            image_sha256=image.image.sha256,
            width=image.image.width,
            height=image.image.height,
            caption="",
            class_labels=list(sample.labels),
            dataset=dataset,
            group_id=group,
            split=split,
            dicom=image.dicom,
            source_uri=sample.uri,
            source_member=f"{sample.image_name}#{image.frame}" if image.frame else sample.image_name,
        )
        out.append(ImageRecord(key, record, image.dicom.modality if image.dicom else None))
    return out
