"""Licence codes of PMC Open Access articles, their groups, and the `--license` filter.

Groups follow PMC's own split of the Open Access Subset:
- commercial: CC0, CC BY, CC BY-SA, CC BY-ND (reuse allowed for any purpose, with attribution);
- noncommercial: CC BY-NC, CC BY-NC-SA, CC BY-NC-ND;
- other: anything else ("NO-CC CODE", custom publisher licences, unknown).
The licence always comes from PMC's metadata (the Cloud Service JSON or the legacy file list), never
from licence prose in the XML.
"""

from __future__ import annotations

import re

COMMERCIAL = frozenset({"CC0", "CC BY", "CC BY-SA", "CC BY-ND"})
NONCOMMERCIAL = frozenset({"CC BY-NC", "CC BY-NC-SA", "CC BY-NC-ND"})

# What each `--license` choice admits. "noncommercial" means "usable for non-commercial work", which
# includes the commercially reusable articles too (PMC: oa_comm + oa_noncomm).
LICENSE_CHOICES = {
    "commercial": frozenset({"commercial"}),
    "noncommercial": frozenset({"commercial", "noncommercial"}),
    "all": frozenset({"commercial", "noncommercial", "other"}),
}


def normalize_license(code: str | None) -> str | None:
    """Canonical spelling of a licence code: "cc-by-nc 4.0" -> "CC BY-NC"."""
    if code is None:
        return None
    text = code.strip().upper().replace("_", " ")
    if not text:
        return None
    text = re.sub(r"\s+\d+(\.\d+)?$", "", text)  # drop a version number: "CC BY 4.0"
    m = re.fullmatch(r"CC[\s-]*(0|ZERO|BY(?:[\s-]*(?:NC|SA|ND))*)", text)
    if not m:
        return text
    body = m.group(1)
    if body in ("0", "ZERO"):
        return "CC0"
    parts = [p for p in re.split(r"[\s-]+", body) if p]
    return "CC " + parts[0] + "".join(f"-{p}" for p in parts[1:])


def license_group(code: str | None) -> str:
    canonical = normalize_license(code)
    if canonical in COMMERCIAL:
        return "commercial"
    if canonical in NONCOMMERCIAL:
        return "noncommercial"
    return "other"


def license_admitted(code: str | None, choice: str) -> bool:
    if choice not in LICENSE_CHOICES:
        raise ValueError(f"--license must be one of {sorted(LICENSE_CHOICES)}, got {choice!r}")
    return license_group(code) in LICENSE_CHOICES[choice]
