"""Read a UMLS Metathesaurus release (MRCONSO.RRF + MRSTY.RRF) into scispacy KB entities.

Only the columns named below are used, by their fixed position in the RRF layout, so a release without
MRFILES.RRF (or the bundled sample) reads the same way as a full one.

MRCONSO.RRF  CUI|LAT|TS|LUI|STT|SUI|ISPREF|AUI|SAUI|SCUI|SDUI|SAB|TTY|CODE|STR|SRL|SUPPRESS|CVF|
MRSTY.RRF    CUI|TUI|STN|STY|ATUI|CVF|
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from curation.concepts.errors import ConceptKbError

log = logging.getLogger(__name__)

_CUI, _LAT, _TS, _STT, _ISPREF, _SAB, _STR, _SUPPRESS = 0, 1, 2, 4, 6, 11, 14, 16
_MRCONSO_FIELDS = 18
_STY_CUI, _STY_TUI = 0, 1

# UMLS SUPPRESS values: N = not suppressible; O = obsolete, E = editor-suppressed, Y = suppressible.
_KEEP_SUPPRESS = {"N", ""}


@dataclass
class RrfConcept:
    cui: str
    canonical_name: str = ""
    aliases: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)


@dataclass
class RrfStats:
    rows: int = 0
    kept: int = 0
    dropped_language: int = 0
    dropped_suppressed: int = 0
    dropped_source: int = 0
    concepts: int = 0
    concepts_without_types: int = 0
    sources: list[str] = field(default_factory=list)


def find_rrf_file(rrf_dir: Path, name: str) -> Path:
    """`rrf_dir/NAME`, or `rrf_dir/META/NAME` (the layout of an unpacked release)."""
    for candidate in (rrf_dir / name, rrf_dir / "META" / name):
        if candidate.is_file():
            return candidate
    raise ConceptKbError("rrf_missing", f"{name} not found in {rrf_dir} (nor in {rrf_dir / 'META'})")


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        for n, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if line:
                yield n, line.split("|")


def read_rrf(
    rrf_dir: str | Path,
    *,
    sources: Iterable[str] | None = None,
    languages: Iterable[str] = ("ENG",),
    include_suppressed: bool = False,
) -> tuple[list[RrfConcept], RrfStats]:
    """Concepts with their names, aliases and semantic types, filtered by language, suppression and source.

    The canonical name is the first row with ISPREF=Y, TS=P, STT=PF (the rule scispacy's own UMLS export
    uses); a concept without one takes its first kept string. Concepts left with no kept string are omitted.
    Raises ConceptKbError("rrf_missing" | "rrf_malformed").
    """
    rrf_dir = Path(rrf_dir)
    mrconso = find_rrf_file(rrf_dir, "MRCONSO.RRF")
    mrsty = find_rrf_file(rrf_dir, "MRSTY.RRF")
    wanted_sources = {s.strip().upper() for s in sources if s.strip()} if sources else None
    wanted_languages = {lang.strip().upper() for lang in languages}
    stats = RrfStats()
    concepts: dict[str, RrfConcept] = {}
    seen_sources: set[str] = set()

    for n, f in _rows(mrconso):
        stats.rows += 1
        if len(f) < _MRCONSO_FIELDS:
            raise ConceptKbError(
                "rrf_malformed", f"{mrconso}:{n}: {len(f)} fields, expected {_MRCONSO_FIELDS}"
            )
        if f[_LAT] not in wanted_languages:
            stats.dropped_language += 1
            continue
        if not include_suppressed and f[_SUPPRESS] not in _KEEP_SUPPRESS:
            stats.dropped_suppressed += 1
            continue
        if wanted_sources is not None and f[_SAB] not in wanted_sources:
            stats.dropped_source += 1
            continue
        name = f[_STR].strip()
        if not name:
            continue
        stats.kept += 1
        seen_sources.add(f[_SAB])
        concept = concepts.get(f[_CUI])
        if concept is None:
            concept = concepts[f[_CUI]] = RrfConcept(f[_CUI])
        is_canonical = f[_ISPREF] == "Y" and f[_TS] == "P" and f[_STT] == "PF"
        if is_canonical and not concept.canonical_name:
            concept.canonical_name = name
        elif name not in concept.aliases:
            concept.aliases.append(name)

    for n, f in _rows(mrsty):
        if len(f) <= _STY_TUI:
            raise ConceptKbError("rrf_malformed", f"{mrsty}:{n}: {len(f)} fields, expected at least 2")
        concept = concepts.get(f[_STY_CUI])
        # MRSTY covers every CUI of the release; most are not in a filtered KB.
        if concept is not None and f[_STY_TUI] not in concept.types:
            concept.types.append(f[_STY_TUI])

    for concept in concepts.values():
        if not concept.canonical_name:
            concept.canonical_name = concept.aliases.pop(0)
        if concept.canonical_name in concept.aliases:
            concept.aliases.remove(concept.canonical_name)
        if not concept.types:
            stats.concepts_without_types += 1
    stats.concepts = len(concepts)
    stats.sources = sorted(seen_sources)
    log.info(
        "read %s: %d rows, %d kept, %d concepts (dropped: %d language, %d suppressed, %d source)",
        mrconso,
        stats.rows,
        stats.kept,
        stats.concepts,
        stats.dropped_language,
        stats.dropped_suppressed,
        stats.dropped_source,
    )
    return list(concepts.values()), stats
