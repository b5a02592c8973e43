"""Semantic type filters: TUIs, or names of groups of them (after the UMLS Semantic Groups)."""

from __future__ import annotations

from collections.abc import Iterable

from curation.concepts.errors import ConceptKbError

SEMANTIC_GROUPS: dict[str, frozenset[str]] = {
    # ANAT
    "anatomy": frozenset(
        ["T017", "T018", "T021", "T022", "T023", "T024", "T025", "T026", "T029", "T030", "T031"]
    ),
    # DISO, findings and symptoms included
    "disorders": frozenset(
        ["T019", "T020", "T033", "T037", "T046", "T047", "T048", "T049", "T050", "T184", "T190", "T191"]
    ),
    "findings": frozenset(["T033", "T034", "T184"]),
    # PROC
    "procedures": frozenset(["T058", "T059", "T060", "T061", "T062", "T063", "T065"]),
    # DEVI
    "devices": frozenset(["T074", "T075", "T203"]),
    # the organisms of LIVB (its population and professional groups are left out: they are not in images)
    "organisms": frozenset(
        [
            "T001",
            "T002",
            "T004",
            "T005",
            "T007",
            "T008",
            "T010",
            "T011",
            "T012",
            "T013",
            "T014",
            "T015",
            "T016",
            "T194",
            "T204",
        ]
    ),
    # CHEM
    "chemicals": frozenset(
        [
            "T103",
            "T104",
            "T109",
            "T114",
            "T116",
            "T120",
            "T121",
            "T122",
            "T123",
            "T125",
            "T126",
            "T127",
            "T129",
            "T130",
            "T131",
            "T192",
            "T195",
            "T196",
            "T197",
            "T200",
        ]
    ),
    # PHYS
    "physiology": frozenset(["T032", "T038", "T039", "T040", "T041", "T042", "T043", "T044", "T045", "T201"]),
    # GENE
    "genes": frozenset(["T028", "T085", "T086", "T087", "T088"]),
}

# What an image caption is about: disorders (with findings), anatomy, procedures, devices, organisms.
DEFAULT_SEMTYPE_GROUPS = ("disorders", "anatomy", "procedures", "devices", "organisms")


def resolve_semtypes(values: Iterable[str] | None) -> frozenset[str] | None:
    """TUIs (any case) and group names to a set of TUIs; None or empty means no restriction.

    Raises ConceptKbError("semtype_unknown") for anything that is neither, so a typo does not silently
    empty a corpus of its concepts.
    """
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    tuis: set[str] = set()
    unknown = []
    for value in values:
        v = value.strip()
        if not v:
            continue
        if v.lower() in SEMANTIC_GROUPS:
            tuis |= SEMANTIC_GROUPS[v.lower()]
        elif len(v) == 4 and v[0] in "Tt" and v[1:].isdigit():
            tuis.add(v.upper())
        else:
            unknown.append(v)
    if unknown:
        raise ConceptKbError(
            "semtype_unknown", f"{unknown}: expected TUIs like T047 or groups {sorted(SEMANTIC_GROUPS)}"
        )
    return frozenset(tuis) or None
