"""Record schemas shared by every stage of medcorpus."""

from schemas.records import (
    CONCEPT_TYPE,
    DICOM_META_TYPE,
    IMAGE_TYPE,
    PAIR_SCHEMA,
    REJECT_SCHEMA,
    SCHEMA_VERSION,
    Concept,
    DicomMeta,
    PairRecord,
    RejectRecord,
    SchemaVersionError,
    check_schema_version,
    pairs_to_table,
    rejects_to_table,
    schema_for,
    schema_with,
)

__all__ = [
    "CONCEPT_TYPE",
    "DICOM_META_TYPE",
    "IMAGE_TYPE",
    "PAIR_SCHEMA",
    "REJECT_SCHEMA",
    "SCHEMA_VERSION",
    "Concept",
    "DicomMeta",
    "PairRecord",
    "RejectRecord",
    "SchemaVersionError",
    "check_schema_version",
    "pairs_to_table",
    "rejects_to_table",
    "schema_for",
    "schema_with",
]
