"""UMLS concept tagging with scispacy's linker over a KB built from local files.

`build_kb` (from MRCONSO.RRF + MRSTY.RRF), `load_kb` / `load_scispacy_kb`, `default_kb_dir` (the bundled
sample KB, built and cached on first use) and `ConceptTagger` (loads once, tags batches).
Importing this package is cheap: scispacy, spaCy and nmslib load when a KB or tagger is built.
"""

from curation.concepts.errors import ConceptKbError
from curation.concepts.evaluation import PrecisionRecall, micro_precision_recall, read_gold
from curation.concepts.kb import (
    KbIdentity,
    LoadedKb,
    build_kb,
    bundled_rrf_dir,
    cache_root,
    default_kb_dir,
    load_kb,
    load_scispacy_kb,
    read_identity,
)
from curation.concepts.semtypes import DEFAULT_SEMTYPE_GROUPS, SEMANTIC_GROUPS, resolve_semtypes
from curation.concepts.tagger import ConceptTagger

__all__ = [
    "DEFAULT_SEMTYPE_GROUPS",
    "SEMANTIC_GROUPS",
    "ConceptKbError",
    "ConceptTagger",
    "KbIdentity",
    "LoadedKb",
    "PrecisionRecall",
    "build_kb",
    "bundled_rrf_dir",
    "cache_root",
    "default_kb_dir",
    "load_kb",
    "load_scispacy_kb",
    "micro_precision_recall",
    "read_gold",
    "read_identity",
    "resolve_semtypes",
]
