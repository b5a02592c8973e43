"""The canonical pair record and the reject record, defined once.

Every stage that produces corpus rows builds :class:`PairRecord` objects; every stage that drops an
input builds a :class:`RejectRecord`. Both convert to pyarrow tables with fixed schemas, so shards
written by different pipelines (PMC, classification datasets) can be mixed freely.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

# Major: a change old readers cannot read (refused). Minor: an added column (read by any reader of the
# same major; rows of older minors read it as null). 1.1 added `image_stored`.
SCHEMA_VERSION = "1.1"
SCHEMA_METADATA_KEY = b"medcorpus_schema_version"

CONCEPT_TYPE = pa.struct(
    [
        pa.field("cui", pa.string()),
        pa.field("name", pa.string()),
        pa.field("semtypes", pa.list_(pa.string())),
        pa.field("start", pa.int32()),
        pa.field("end", pa.int32()),
        pa.field("score", pa.float32()),
    ]
)

# Only these DICOM attributes may ever reach a corpus (see connectors.dicom): none identifies a person.
DICOM_META_TYPE = pa.struct(
    [
        pa.field("modality", pa.string()),
        pa.field("body_part", pa.string()),
        pa.field("view_position", pa.string()),
        pa.field("photometric_interpretation", pa.string()),
        pa.field("rows", pa.int32()),
        pa.field("columns", pa.int32()),
        pa.field("pixel_spacing", pa.list_(pa.float32())),
        pa.field("manufacturer_model", pa.string()),
    ]
)

# HF `datasets.Image` storage layout: the column decodes to a PIL image in load_dataset.
IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])

PAIR_FIELDS: list[pa.Field] = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("source", pa.string()),  # "pmc" | "classification"
    pa.field("kind", pa.string()),  # "figure" | "table" | "image"
    pa.field("image", IMAGE_TYPE),
    pa.field("image_sha256", pa.string()),  # SHA-256 of the stored pixels (decoded, normalised, resized)
    # "source": the source file's bytes as they came; "reencoded": decoded in full and re-encoded;
    # "reencoded_dct": a JPEG of >= 2x --max-side decoded at 1/2-1/8 DCT scale (image_sha256 is of those)
    pa.field("image_stored", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("caption", pa.string()),
    pa.field("captions", pa.list_(pa.string())),  # alternatives; training samples one per step
    pa.field("figure_label", pa.string()),  # "Fig 1", "Figure 2—figure supplement 1", "Table 3"
    pa.field("group_caption", pa.string()),  # the enclosing fig-group's caption, as context
    pa.field("mentions", pa.list_(pa.string())),  # paragraphs of the article that cite the figure
    pa.field("class_labels", pa.list_(pa.string())),  # classification datasets: positive labels
    pa.field("dataset", pa.string()),
    pa.field("group_id", pa.string()),  # the unit splits are assigned by: pmcid, or hashed patient/study
    pa.field("pmcid", pa.string()),
    pa.field("pmid", pa.string()),
    pa.field("doi", pa.string()),
    pa.field("journal", pa.string()),
    pa.field("year", pa.int16()),
    pa.field("title", pa.string()),
    pa.field("keywords", pa.list_(pa.string())),
    pa.field("license", pa.string()),
    pa.field("license_group", pa.string()),  # "commercial" | "noncommercial" | "other"
    pa.field("split", pa.string()),  # "train" | "validation" | "test"
    pa.field("modality", pa.string()),
    pa.field("modality_confidence", pa.float32()),
    pa.field("compound", pa.bool_()),
    pa.field("concepts", pa.list_(CONCEPT_TYPE)),
    pa.field("dicom", DICOM_META_TYPE),
    pa.field("source_uri", pa.string()),  # the package, folder or file the record came from
    pa.field("source_member", pa.string()),  # the image inside it
    pa.field("text_model", pa.string()),  # what produced the caption: "jats", "template", "vllm:<model>"
]


@dataclass
class Concept:
    cui: str
    name: str
    semtypes: list[str]
    start: int
    end: int
    score: float


@dataclass
class DicomMeta:
    modality: str | None = None
    body_part: str | None = None
    view_position: str | None = None
    photometric_interpretation: str | None = None
    rows: int | None = None
    columns: int | None = None
    pixel_spacing: list[float] | None = None
    manufacturer_model: str | None = None


@dataclass
class PairRecord:
    id: str
    source: str
    kind: str
    image_bytes: bytes
    image_sha256: str
    width: int
    height: int
    caption: str
    image_path: str | None = None  # file name stored with the bytes; the extension tells the format
    image_stored: str | None = None  # "source" | "reencoded" | "reencoded_dct" (connectors.images)
    captions: list[str] = field(default_factory=list)
    figure_label: str | None = None
    group_caption: str | None = None
    mentions: list[str] = field(default_factory=list)
    class_labels: list[str] = field(default_factory=list)
    dataset: str | None = None
    group_id: str | None = None
    pmcid: str | None = None
    pmid: str | None = None
    doi: str | None = None
    journal: str | None = None
    year: int | None = None
    title: str | None = None
    keywords: list[str] = field(default_factory=list)
    license: str | None = None
    license_group: str | None = None
    split: str | None = None
    modality: str | None = None
    modality_confidence: float | None = None
    compound: bool | None = None
    concepts: list[Concept] = field(default_factory=list)
    dicom: DicomMeta | None = None
    source_uri: str | None = None
    source_member: str | None = None
    text_model: str | None = None

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        row["image"] = {"bytes": row.pop("image_bytes"), "path": row.pop("image_path")}
        row["concepts"] = [dataclasses.asdict(c) for c in self.concepts]
        row["dicom"] = dataclasses.asdict(self.dicom) if self.dicom is not None else None
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PairRecord:
        values = {k: v for k, v in row.items() if k in _PAIR_ATTRS}
        image = row.get("image") or {}
        values["image_bytes"] = image.get("bytes")
        values["image_path"] = image.get("path")
        values["concepts"] = [Concept(**c) for c in row.get("concepts") or []]
        values["dicom"] = DicomMeta(**row["dicom"]) if row.get("dicom") else None
        for name in ("captions", "mentions", "class_labels", "keywords"):
            values[name] = list(values.get(name) or [])
        return cls(**values)


_PAIR_ATTRS = {f.name for f in dataclasses.fields(PairRecord)}


@dataclass
class RejectRecord:
    """An input that did not become a pair, and why. `reason` is a short stable code."""

    id: str
    stage: str
    reason: str
    detail: str = ""
    source: str | None = None
    source_uri: str | None = None

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


REJECT_FIELDS: list[pa.Field] = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),
    pa.field("detail", pa.string()),
    pa.field("source", pa.string()),
    pa.field("source_uri", pa.string()),
]


def _hf_features(fields: list[pa.Field]) -> dict[str, Any]:
    """The `datasets` features JSON for a schema, with `image` declared as an HF Image."""

    def feature(t: pa.DataType) -> dict[str, Any]:
        if pa.types.is_struct(t):
            return {t.field(i).name: feature(t.field(i).type) for i in range(t.num_fields)}
        if pa.types.is_list(t):
            return {"feature": feature(t.value_type), "_type": "List"}
        return {"dtype": _HF_DTYPES.get(t, str(t)), "_type": "Value"}

    features = {}
    for f in fields:
        features[f.name] = {"_type": "Image"} if f.type == IMAGE_TYPE else feature(f.type)
    return features


_HF_DTYPES = {
    pa.string(): "string",
    pa.binary(): "binary",
    pa.int16(): "int16",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.float32(): "float32",
    pa.float64(): "float64",
    pa.bool_(): "bool",
}


def schema_for(fields: list[pa.Field]) -> pa.Schema:
    """A corpus schema: the fields, their HF `datasets` features and the schema version in the metadata."""
    hf = json.dumps({"info": {"features": _hf_features(fields)}})
    return pa.schema(
        fields, metadata={b"huggingface": hf.encode(), SCHEMA_METADATA_KEY: SCHEMA_VERSION.encode()}
    )


PAIR_SCHEMA = schema_for(PAIR_FIELDS)
REJECT_SCHEMA = schema_for(REJECT_FIELDS)


def schema_with(schema: pa.Schema, names: list[str]) -> pa.Schema:
    """`schema` with the named pair fields replaced or appended in their canonical types, so a stage
    can add its columns to any corpus (a foreign one keeps its own extra columns)."""
    canonical = {f.name: f for f in PAIR_FIELDS}
    fields = [canonical[f.name] if f.name in names else f for f in schema]
    fields += [canonical[n] for n in names if n not in schema.names]
    return schema_for(fields)


def pairs_to_table(records: Iterable[PairRecord]) -> pa.Table:
    return pa.Table.from_pylist([r.to_row() for r in records], schema=PAIR_SCHEMA)


def rejects_to_table(records: Iterable[RejectRecord]) -> pa.Table:
    return pa.Table.from_pylist([r.to_row() for r in records], schema=REJECT_SCHEMA)


class SchemaVersionError(ValueError):
    pass


def check_schema_version(schema: pa.Schema, where: str = "") -> str:
    """Return the corpus schema version of a Parquet schema, refusing ones this code cannot read."""
    meta = schema.metadata or {}
    found = meta.get(SCHEMA_METADATA_KEY, b"").decode() or None
    if found is None:
        raise SchemaVersionError(
            f"{where or 'this file'} is not a medcorpus shard (no schema version in its metadata)"
        )
    if found.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise SchemaVersionError(
            f"{where or 'this file'} was written with corpus schema {found}; this medcorpus reads {SCHEMA_VERSION}. "
            "Rebuild the corpus with this version, or install the medcorpus release that wrote it."
        )
    return found
