"""`medcorpus ingest classification`: an image-classification dataset to image-caption pairs, on Beam.

Stages, each counted (see pipelines.accounting):
  samples   dataset rows: decoded into one or more images (frames, slices), or rejected
  captions  K captions per label set (not per image) from the LLM backend, through the post-filters:
            accepted, or rejected with the filter's reason
  pairs     each image joined with its label set's captions: a pair (or one per caption), or rejected
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import apache_beam as beam

from connectors.classification import ManifestRowError, open_classification_dataset
from connectors.classification_pairs import SOURCE, ImageRecord, image_records, row_error_reject
from connectors.corpus import RunInfo
from connectors.dataset_card import CardError, DatasetCard, load_card, modality_from_dicom
from connectors.images import ImageOptions
from connectors.medical_image import VolumePolicy
from connectors.splits import SplitRatios
from curation.modality import normalize_modality
from models.captions import (
    NO_CAPTION,
    CaptionError,
    CaptionGenerator,
    ClassCaptions,
    attach_captions,
    plan_requests,
)
from models.llm import BackendConfig, build_backend
from pipelines.accounting import REJECTS, Progress, count, reject
from pipelines.corpus_output import WriteCorpus
from schemas import RejectRecord


@dataclass
class ClassificationIngestOptions:
    dataset: str
    out: str
    name: str
    card: str | None = None
    llm: BackendConfig = field(default_factory=BackendConfig)
    captions_per_class: int = 10
    caption_mode: str = "list"  # "list": K captions in one record; "records": one record per caption
    label_column: str | None = None
    dataset_root: str | None = None  # manifests: the folder paths are relative to (default: the manifest's)
    image_column: str | None = None
    image: ImageOptions = field(default_factory=ImageOptions)
    volume: VolumePolicy = field(default_factory=VolumePolicy)
    splits: SplitRatios = field(default_factory=SplitRatios)

    def describe(self) -> dict:
        described = asdict(self)
        described["llm"]["api_key"] = "***" if self.llm.api_key else None
        return described


@dataclass(frozen=True)
class LabelSetInfo:
    key: str
    labels: tuple[str, ...]
    dicom_modality: str | None


@dataclass
class CaptionOutcome:
    """What a label set got: its captions, or why it can have none."""

    captions: ClassCaptions | None = None
    reason: str | None = None
    detail: str = ""


def dataset_card(options: ClassificationIngestOptions, infos: Iterable[LabelSetInfo]) -> DatasetCard:
    """The card the user gave, or one built from the class names and, where every file of a class says
    the same, its DICOM modality."""
    if options.card:
        return load_card(options.card)
    per_class: dict[str, set] = {}
    for info in infos:
        for label in info.labels:
            per_class.setdefault(label, set()).add(info.dicom_modality)
    modalities = {m for found in per_class.values() for m in found}
    modality = modality_from_dicom(next(iter(modalities))) if len(modalities) == 1 else None
    return DatasetCard.default(options.name, sorted(per_class), modality)


class DecodeSamples(beam.DoFn):
    def __init__(self, options: ClassificationIngestOptions):
        self.options = options

    def setup(self):
        self.progress = Progress("samples")

    def process(self, item, total: int | None = None):
        self.progress.total = total
        count("samples", "in")
        self.progress.tick()
        if isinstance(item, ManifestRowError):
            yield reject(row_error_reject(self.options.name, item))
            return
        o = self.options
        result = image_records(o.name, item, o.image, o.volume, o.splits, source_uri=o.dataset)
        if isinstance(result, RejectRecord):
            yield reject(result)
            return
        count("samples", "out")
        yield from result


class GenerateCaptions(beam.DoFn):
    """Loads the caption backend once per worker; captions label sets in batches."""

    def __init__(self, config: BackendConfig):
        self.config = config

    def setup(self):
        self.backend = build_backend(self.config)

    def process(self, requests: list, card: DatasetCard):
        generator = CaptionGenerator(self.backend, [card])
        for captions in generator.run(requests):
            count("captions", "in", len(captions.captions) + len(captions.rejected))
            count("captions", "out", len(captions.captions))
            for rejected in captions.reject_records():
                yield reject(rejected)
            yield captions.key, CaptionOutcome(captions=captions)

    def teardown(self):
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.close()


UNPLANNED = "unplanned"


def plan(infos: list[LabelSetInfo], card: DatasetCard, k: int):
    """A caption request per label set; label sets the card cannot describe go to UNPLANNED."""
    planned = plan_requests(card, [i.labels for i in infos], k)
    yield from planned.requests
    for key, error in planned.errors.items():
        yield beam.pvalue.TaggedOutput(
            UNPLANNED, (key, CaptionOutcome(reason=error.reason, detail=error.detail))
        )


class AttachCaptions(beam.DoFn):
    def __init__(self, mode: str):
        self.mode = mode

    def process(self, image: ImageRecord, outcomes: dict[str, CaptionOutcome], card: DatasetCard):
        count("pairs", "in")
        outcome = outcomes.get(image.label_key)
        record = image.record
        if outcome is None:
            outcome = CaptionOutcome(
                reason=NO_CAPTION, detail=f"no captions were made for {image.label_key!r}"
            )
        if outcome.captions is None:
            yield reject(
                RejectRecord(
                    id=record.id, stage="pairs", reason=outcome.reason, detail=outcome.detail, source=SOURCE
                )
            )
            return
        try:
            records = attach_captions(record, outcome.captions, self.mode)
        except CaptionError as exc:
            yield reject(
                RejectRecord(id=record.id, stage="pairs", reason=exc.reason, detail=exc.detail, source=SOURCE)
            )
            return
        modality, confidence = self._modality(image, card)
        count("pairs", "out")
        for r in records:
            r.modality, r.modality_confidence = modality, confidence
            yield r

    def _modality(self, image: ImageRecord, card: DatasetCard) -> tuple[str | None, float | None]:
        """The card's modality for the labels (the files' DICOM modality without one)."""
        try:
            facts_modality = card.facts(image.record.class_labels).modality
        except CardError:
            facts_modality = None
        name = facts_modality or modality_from_dicom(image.dicom_modality)
        return (normalize_modality(name), 1.0) if name else (None, None)


def build(pipeline: beam.Pipeline, options: ClassificationIngestOptions) -> None:
    o = options
    items = (
        pipeline
        | "Dataset" >> beam.Create([o.dataset])
        | "ReadRows"
        >> beam.FlatMap(
            lambda spec: open_classification_dataset(
                spec, label_column=o.label_column, image_column=o.image_column, root=o.dataset_root
            )
        )
        | "Spread samples" >> beam.Reshuffle()
    )
    listed = items | "SampleTotal" >> beam.combiners.Count.Globally()  # only a number: for the progress line
    images = items | "DecodeSamples" >> beam.ParDo(
        DecodeSamples(o), total=beam.pvalue.AsSingleton(listed)
    ).with_outputs(REJECTS, main="images")
    infos = (
        images.images
        | "LabelSets"
        >> beam.Map(lambda i: (i.label_key, tuple(sorted(set(i.record.class_labels))), i.dicom_modality))
        | "DistinctLabelSets" >> beam.Distinct()
        | "AllLabelSets" >> beam.combiners.ToList()
        | "AsInfos"
        >> beam.Map(
            lambda found: sorted(
                (LabelSetInfo(*f) for f in found), key=lambda i: (i.key, i.dicom_modality or "")
            )
        )
    )
    card = infos | "Card" >> beam.Map(
        lambda found: dataset_card(o, sorted(found, key=lambda i: (i.key, i.dicom_modality or "")))
    )
    planned = infos | "Plan" >> beam.FlatMap(
        lambda found, card: plan(found, card, o.captions_per_class),
        card=beam.pvalue.AsSingleton(card),
    ).with_outputs(UNPLANNED, main="requests")
    captions = (
        planned.requests
        | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=256)
        | "GenerateCaptions"
        >> beam.ParDo(GenerateCaptions(o.llm), card=beam.pvalue.AsSingleton(card)).with_outputs(
            REJECTS, main="captions"
        )
    )
    outcomes = (captions.captions, planned[UNPLANNED]) | "Outcomes" >> beam.Flatten()
    pairs = images.images | "AttachCaptions" >> beam.ParDo(
        AttachCaptions(o.caption_mode),
        outcomes=beam.pvalue.AsDict(outcomes),
        card=beam.pvalue.AsSingleton(card),
    ).with_outputs(REJECTS, main="pairs")
    rejects = [images[REJECTS], captions[REJECTS], pairs[REJECTS]] | "AllRejects" >> beam.Flatten()
    _ = (pairs.pairs, rejects) | "WriteCorpus" >> WriteCorpus(o.out)


def run_info(options: ClassificationIngestOptions) -> RunInfo:
    return RunInfo(
        pipeline="ingest classification",
        inputs={"dataset": options.dataset, "card": options.card},
        options=options.describe(),
    )
