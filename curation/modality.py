"""Image modality labels from caption cues and UMLS concepts, and compound-figure detection.

The taxonomy is fixed (a corpus column users filter on):

    radiography         plain X-ray, mammography, fluoroscopy, angiography
    ct                  computed tomography
    mri                 magnetic resonance imaging
    ultrasound          ultrasonography, echocardiography, Doppler
    nuclear             PET, SPECT, scintigraphy
    histopathology      stained tissue sections, IHC, biopsies under the microscope
    microscopy          other light/fluorescence/electron microscopy (cells, organisms)
    ophthalmic          fundus photography, OCT, slit lamp, fluorescein angiography
    dermatology         dermoscopy and clinical photographs of skin disease
    endoscopy           endoscopy, colonoscopy, bronchoscopy, laparoscopy
    chart               plots, graphs, curves, tables of numbers drawn as figures
    diagram             schematics, illustrations, workflows
    chemical_structure  structural formulas
    photograph          other photographs (gross specimens, clinical, intraoperative)
    other               nothing recognised (confidence 0)

`label_modality` sums weighted evidence per label (caption patterns, and concepts such as C0040405
X-Ray Computed Tomography) and returns the best label with a confidence in [0, 1) that grows with the
evidence and shrinks with a competing label's. Ties go to the more specific label (order of PRIORITY).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from schemas import Concept

MODALITIES = (
    "radiography",
    "ct",
    "mri",
    "ultrasound",
    "nuclear",
    "histopathology",
    "microscopy",
    "ophthalmic",
    "dermatology",
    "endoscopy",
    "chart",
    "diagram",
    "chemical_structure",
    "photograph",
    "other",
)

# Tie-break: more specific first (a PET/CT is nuclear; a fundus photograph is ophthalmic).
PRIORITY = (
    "ophthalmic",
    "dermatology",
    "endoscopy",
    "nuclear",
    "histopathology",
    "ct",
    "mri",
    "ultrasound",
    "radiography",
    "microscopy",
    "chemical_structure",
    "chart",
    "diagram",
    "photograph",
)


@dataclass(frozen=True)
class _Cue:
    modality: str
    pattern: re.Pattern[str]
    weight: float


def _cues(modality: str, weight: float, *patterns: str, case_sensitive: bool = False) -> list[_Cue]:
    flags = 0 if case_sensitive else re.IGNORECASE
    return [_Cue(modality, re.compile(p, flags), weight) for p in patterns]


CUES: list[_Cue] = [
    *_cues("ct", 1.0, r"computed tomograph", r"\bCAT scan", r"tomography,? (?:x-ray )?computed"),
    *_cues("ct", 1.0, r"\b(?:CT|CTA|HRCT|CECT|MDCT|CBCT)\b", case_sensitive=True),
    *_cues(
        "mri", 1.0, r"magnetic resonance", r"\bT[12][- ]?weighted", r"diffusion[- ]weighted", r"\bFLAIR\b"
    ),
    *_cues("mri", 1.0, r"\b(?:MRI|MR|MRA|DWI|fMRI)\b", case_sensitive=True),
    *_cues("radiography", 1.0, r"x-?rays?\b", r"radiograph", r"\bplain films?\b", r"mammogra", r"fluorosco"),
    *_cues("radiography", 1.0, r"\bCXR\b", case_sensitive=True),
    *_cues("radiography", 0.5, r"angiogra"),
    *_cues("ultrasound", 1.0, r"ultrasound", r"ultrasonogra", r"sonogra", r"echocardiogra", r"doppler"),
    *_cues("ultrasound", 1.0, r"\b(?:US|TTE|TEE|IVUS)\b", case_sensitive=True),
    *_cues("nuclear", 1.0, r"positron", r"scintigra", r"nuclear medicine", r"\bbone scan", r"radionuclide"),
    *_cues("nuclear", 1.0, r"\b(?:PET|SPECT|FDG)\b", case_sensitive=True),
    *_cues(
        "histopathology",
        1.0,
        r"histopatholog",
        r"histolog",
        r"hematoxylin|haematoxylin|\beosin\b|\bH\s?&\s?E\b",
        r"immunohistochem",
        r"\bIHC\b",
        r"whole[- ]slide",
        r"\bcytolog",
    ),
    *_cues("histopathology", 0.7, r"photomicrograph", r"\bstain(?:ed|ing)\b", r"\bbiops(?:y|ies)\b"),
    *_cues("microscopy", 0.8, r"microscop", r"(?<!photo)micrograph", r"confocal"),
    *_cues("microscopy", 0.5, r"fluorescen", r"\bscale bars?\b", r"\bmagnification\b"),
    *_cues(
        "ophthalmic",
        1.0,
        r"\bfundus",
        r"optical coherence",
        r"\bOCT\b",
        r"slit[- ]lamp",
        r"ophthalmoscop",
        r"fluorescein angiogra",
    ),
    *_cues("ophthalmic", 0.5, r"\bretina", r"\bmacula", r"\boptic dis[ck]"),
    *_cues("dermatology", 1.0, r"dermoscop", r"dermatoscop"),
    *_cues(
        "dermatology",
        0.5,
        r"\bskin\b",
        r"cutaneous",
        r"\brash\b",
        r"psoria",
        r"melanoma",
        r"\bn(?:a)?evus",
        r"eczema",
        r"dermatitis",
        r"vitiligo",
        r"\bacne\b",
    ),
    *_cues(
        "endoscopy",
        1.0,
        r"endoscop",
        r"colonoscop",
        r"bronchoscop",
        r"gastroscop",
        r"laparoscop",
        r"cystoscop",
    ),
    *_cues("endoscopy", 1.0, r"arthroscop", r"capsule endoscop"),
    *_cues(
        "chart",
        1.0,
        r"\b(?:bar|pie|line) (?:chart|graph)",
        r"\bplots?\b",
        r"\bhistograms?\b",
        r"kaplan[- ]meier",
        r"\bcurves?\b",
        r"\bgraphs?\b",
        r"\bheat ?maps?\b",
        r"\bROC\b",
        r"whisker",
        r"error bars",
    ),
    *_cues("chart", 0.5, r"\bmean\b", r"regression", r"frequency distribution", r"\bspectr(?:um|a)\b"),
    *_cues(
        "diagram", 1.0, r"schemati", r"\bdiagram", r"illustration", r"flow ?chart", r"\bworkflow", r"cartoon"
    ),
    *_cues("chemical_structure", 1.0, r"chemical structure", r"molecular structure", r"structural formula"),
    *_cues("photograph", 0.3, r"photograph", r"\bphoto\b", r"clinical (?:image|picture)", r"intraoperative"),
    *_cues("photograph", 0.5, r"\bgross (?:specimen|appearance|patholog)", r"macroscopic"),
]

# Concepts that name a modality (CUIs of the bundled KB; a full UMLS KB tags the same CUIs).
CONCEPT_MODALITY = {
    "C0040405": "ct",
    "C0024485": "mri",
    "C1306645": "radiography",
    "C0039985": "radiography",
    "C0024671": "radiography",
    "C0016356": "radiography",
    "C0041618": "ultrasound",
    "C0013516": "ultrasound",
    "C0032743": "nuclear",
    "C0920367": "ophthalmic",
    "C0014245": "endoscopy",
    "C0009378": "endoscopy",
    "C0006290": "endoscopy",
    "C0031150": "endoscopy",
    "C0021044": "histopathology",
    "C0026019": "microscopy",
    "C0026018": "microscopy",
}
CONCEPT_WEIGHT = 0.6


def modality_scores(caption: str, concepts: Iterable[Concept] = ()) -> dict[str, float]:
    """Evidence per label: each cue counts once however often it matches; each modality concept once."""
    scores: dict[str, float] = {}
    text = caption or ""
    for cue in CUES:
        if cue.pattern.search(text):
            scores[cue.modality] = scores.get(cue.modality, 0.0) + cue.weight
    for modality in {CONCEPT_MODALITY[c.cui] for c in concepts if c.cui in CONCEPT_MODALITY}:
        scores[modality] = scores.get(modality, 0.0) + CONCEPT_WEIGHT
    return scores


def label_modality(caption: str, concepts: Iterable[Concept] = ()) -> tuple[str, float]:
    """(modality, confidence) for a caption; ("other", 0.0) when nothing points anywhere."""
    scores = modality_scores(caption, concepts)
    if not scores:
        return "other", 0.0
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], PRIORITY.index(kv[0])))
    best, top = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    return best, round(top / (top + runner_up + 0.25), 3)


_NAMES = {
    "radiography": (
        "x-ray",
        "xray",
        "x ray",
        "radiograph",
        "radiography",
        "cr",
        "dx",
        "mg",
        "rf",
        "xa",
        "cxr",
    ),
    "ct": ("ct", "cta", "computed tomography", "ct scan", "cat", "hrct"),
    "mri": ("mr", "mri", "magnetic resonance", "magnetic resonance imaging", "mra"),
    "ultrasound": ("us", "ultrasound", "ultrasonography", "sonography", "echocardiography", "echo"),
    "nuclear": ("pt", "pet", "nm", "spect", "pet/ct", "pet-ct", "scintigraphy", "nuclear medicine"),
    "histopathology": ("histopathology", "pathology", "histology", "wsi", "sm", "whole slide image", "h&e"),
    "microscopy": ("microscopy", "light microscopy", "electron microscopy", "fluorescence microscopy"),
    "ophthalmic": ("fundus", "fundus photography", "cfp", "oct", "retina", "retinal imaging", "op", "opt"),
    "dermatology": ("dermoscopy", "dermatoscopy", "dermatology", "skin", "clinical dermatology"),
    "endoscopy": ("es", "endoscopy", "colonoscopy", "gastroscopy", "bronchoscopy", "laparoscopy"),
    "chart": ("chart", "plot", "graph"),
    "diagram": ("diagram", "illustration", "schematic"),
    "chemical_structure": ("chemical structure", "molecule", "structural formula"),
    "photograph": ("photograph", "photo", "xc", "gross"),
}
_NAME_TO_MODALITY = {name: modality for modality, names in _NAMES.items() for name in names}


def normalize_modality(name: str | None) -> str:
    """A free-text or DICOM modality name ("CT", "X-ray", "fundus photography", "MR") to the taxonomy.

    Known names and DICOM codes map directly; anything else is read like a caption; "other" if nothing fits.
    """
    if not name or not name.strip():
        return "other"
    key = " ".join(name.strip().lower().replace("_", " ").split())
    if key in _NAME_TO_MODALITY:
        return _NAME_TO_MODALITY[key]
    return label_modality(name)[0]


_PAREN_LETTER = re.compile(r"\(\s*([A-Ha-h])\s*(?:[,)]|and\b)")
_SENTENCE_LETTER = re.compile(r"(?:^|[.;:)]\s*)([A-H]|[a-h])[.,:)]\s+(?=[A-Za-z(])")
_RANGE = re.compile(
    r"(?:\(|\bpanels?\s+|\bfig(?:ure)?s?\.?\s*\d+\s*)([A-Ha-h])\s*[–—-]\s*([A-Ha-h])\b", re.IGNORECASE
)
_PANEL_LETTER = re.compile(r"\bpanels?\s+([A-H])\b", re.IGNORECASE)
_PANEL_LIST = re.compile(r"\bpanels?\s+([A-H])\s*(?:,|and|&)\s*([A-H])\b", re.IGNORECASE)
_POSITION = re.compile(
    r"\b(left|right|top|bottom|upper|lower|middle)(?:\s+(?:panel|image|row|column))?\s*:", re.IGNORECASE
)
_POSITION_PANELS = re.compile(r"\b(left|right|top|bottom|upper|lower)\s+panels?\b", re.IGNORECASE)


def _consecutive_letters(letters: Iterable[str]) -> bool:
    """At least two panel letters, starting at a/A and without gaps between them ("(A) ... (B) ...")."""
    seen = sorted({ord(c.lower()) for c in letters})
    return len(seen) >= 2 and seen[0] == ord("a") and seen[1] == ord("b")


def is_compound(caption: str) -> bool:
    """True when the caption describes several panels: "(A) ... (B) ...", "A, ...; B, ...",
    "Left: ... Right: ...", "(a–d)", "panels A and B"."""
    text = caption or ""
    if _consecutive_letters(_PAREN_LETTER.findall(text)):
        return True
    if _consecutive_letters(_SENTENCE_LETTER.findall(text)):
        return True
    for first, last in _RANGE.findall(text):
        if ord(last.lower()) > ord(first.lower()):
            return True
    if _PANEL_LIST.search(text) or _consecutive_letters(_PANEL_LETTER.findall(text)):
        return True
    if len({m.lower() for m in _POSITION.findall(text)}) >= 2:
        return True
    return len({m.lower() for m in _POSITION_PANELS.findall(text)}) >= 2
