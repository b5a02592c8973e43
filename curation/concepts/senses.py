"""Context rules that reject a linked mention used in another sense than the concept's.

A name in the KB is often an ordinary word, or an acronym, in a caption: "arrow head", "femoral head"
and "head of the pancreas" are no Head; "right-hand side" no Hand; "control arm" no Arm; "fetal calf
serum" no Calf of leg; "dendritic spines" no Vertebral column; "X-ray diffraction" no Plain x-ray;
"mean CT 18.2" (a qPCR cycle threshold), "PET bottles", "OCT compound" and "CD34-PE" (a fluorochrome)
no imaging or embolism. Each rule looks only at the caption itself: the neighbouring words, a
definition elsewhere in the caption, or the presence of a cell-biology context. When in doubt a rule
drops the concept: a missing concept costs less than a wrong one.

An acronym the caption defines ("polyethylene (PE)", "cycle threshold (CT)") never reaches these rules:
the tagger links it through its long form, and a long form that names no concept gives none.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

HEAD = "C0018670"
NECK = "C0027530"
HAND = "C0018563"
ARM = "C0446516"
CALF = "C0230445"
SPINE = "C0037949"
PLAIN_XRAY = "C1306645"
CELLS = "C0007634"
CELL_NUCLEUS = "C0007610"
BONE = "C0262950"
SKIN = "C1123023"
CT = "C0040405"
PET = "C0032743"
OCT = "C0920367"
PULMONARY_EMBOLISM = "C0034065"
ULTRASOUND = "C0041618"


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words naming the structure a "head" or "neck" belongs to, besides those the KB links to anatomy.
_PART_OWNERS = _set("""arrow ulnar radial metatarsal metacarpal tibial fibular talar phalangeal condylar radius ulna tibia
    fibula talus condyle caudate pancreatic pancreas femoral humeral aortic bladder rib mandibular
    epididymal epididymis sperm gland muscle tooth screw stem implant prosthetic pin nail""")
_TRIAL_ARMS = _set(
    "control treatment placebo intervention study trial experimental comparator active standard"
)
_NOT_CALF = _set("fetal foetal newborn bovine")
_XRAY_PHYSICS = _set("""diffraction crystallography crystallographic crystal crystals absorption photoelectron fluorescence
    scattering spectroscopy spectrum spectra microanalysis structure structures source beam beams
    detector detectors microscopy microtomography energy""")
_PET_MATERIAL = _set("""bottle bottles film films substrate substrates fiber fibers fibre fibres membrane membranes sheet
    sheets foil foils plastic plastics mesh fabric yarn nanofibers track-etched""")
_OCT_MEDIUM = _set("compound embedded embedding medium tissue-tek cryosection cryosections cryostat cryomold")
_FLUOROCHROME = re.compile(r"^(CD\d+\w*|Cy\d|FITC|APC|PerCP|BV\d+|PE|conjugated|Alexa|AF\d+|eFluor)$", re.I)
_BRAIN_NUCLEI = _set("""lentiform caudate basal red subthalamic dentate accumbens thalamic vestibular cochlear olivary
    geniculate raphe suprachiasmatic paraventricular arcuate solitary deep cerebellar""")
_CELL_CONTEXT = re.compile(
    r"\bcell|\bstain|dapi|hoechst|microscop|fluoresc|immuno|histolog|h&e|cytoplasm|confocal|mitosis", re.I
)
_CYCLE_THRESHOLD = re.compile(r"cycle threshold|q-?pcr|real-time pcr|rt-pcr|ΔCt|ΔΔCt", re.I)
_AFTER_COUNTRY = _set("for and in to of from with is has was were")
_NUMBER = re.compile(r"^[\d.,±%-]*\d[\d.,±%-]*$")


@dataclass(frozen=True)
class Token:
    text: str
    space_after: bool  # False when the next token is glued to this one ("CD34" in "CD34-PE")


def _word(tokens: Sequence[Token], i: int) -> str:
    return tokens[i].text.lower() if 0 <= i < len(tokens) else ""


def _glued_before(tokens: Sequence[Token], start: int) -> str:
    """The token glued to the mention's start by a hyphen or slash ("giant" in "giant-cell"), else ""."""
    glued = start >= 2 and not tokens[start - 2].space_after and not tokens[start - 1].space_after
    return tokens[start - 2].text if glued and tokens[start - 1].text in "-/" else ""


def _glued_after(tokens: Sequence[Token], end: int) -> str:
    glued = end + 1 < len(tokens) and not tokens[end - 1].space_after and not tokens[end].space_after
    return tokens[end + 1].text if glued and tokens[end].text in "-/" else ""


def wrong_sense(
    tokens: Sequence[Token], start: int, end: int, cui: str, text: str, anatomy_words: frozenset[str]
) -> str | None:
    """Why the mention tokens[start:end] linked to `cui` is another sense, or None when it may stand.

    `text` is the whole caption; `anatomy_words` the lower-case single words that name body structures.
    """
    mention = " ".join(t.text for t in tokens[start:end]).lower()
    prev, nxt = _word(tokens, start - 1), _word(tokens, end)
    prev_glued, next_glued = _glued_before(tokens, start).lower(), _glued_after(tokens, end).lower()

    if next_glued == "like":  # "mass-like lesion" resembles a mass
        return "resemblance"
    if cui in (HEAD, NECK) and mention in ("head", "heads", "neck", "necks"):
        owner_before = (
            start > 0 and tokens[start - 1].space_after and (prev in _PART_OWNERS or prev in anatomy_words)
        )
        after_of = _word(tokens, end + 2) if _word(tokens, end + 1) == "the" else _word(tokens, end + 1)
        owner_after = nxt == "of" and (after_of in _PART_OWNERS or after_of in anatomy_words)
        if owner_before or owner_after or prev_glued == "arrow":
            return "part of another structure"
    if cui == HAND and (nxt == "side" or next_glued == "side" or prev in ("other", "one")):
        return "side of a figure"
    if cui == ARM and (prev in _TRIAL_ARMS or prev_glued == "c"):
        return "trial arm or C-arm"
    if cui == CALF and (nxt == "serum" or prev in _NOT_CALF):
        return "calf serum"
    if cui == SPINE and (mention.endswith("spines") or prev.startswith(("dendrit", "synap"))):
        return "dendritic spine"
    if cui == PLAIN_XRAY and nxt in _XRAY_PHYSICS:
        return "X-ray physics"
    if cui == CELLS and prev_glued:  # "giant-cell tumor", "4-cell embryo", "whole-cell recording"
        return "compound modifier"
    if cui == CELL_NUCLEUS and (prev in _BRAIN_NUCLEI or nxt == "pulposus" or not _CELL_CONTEXT.search(text)):
        return "brain or disc nucleus"
    if cui == BONE and nxt in ("window", "windows", "algorithm", "kernel"):
        return "display setting"
    if cui == SKIN and prev == "onion":
        return "appearance"
    if cui == CT and mention == "ct" and tokens[start].text == "CT":
        if (
            _NUMBER.match(nxt)
            or nxt in ("value", "values", "threshold")
            or prev in ("mean", "median", "average")
        ):
            return "cycle threshold"
        if _CYCLE_THRESHOLD.search(text) and not re.search(r"tomograph|scan", text, re.I):
            return "cycle threshold"
    if cui == PET and (nxt in _PET_MATERIAL or "terephthalate" in text.lower()):
        return "polyethylene terephthalate"
    if cui == OCT and (nxt in _OCT_MEDIUM or prev in _OCT_MEDIUM or "cutting temperature" in text.lower()):
        return "embedding medium"
    if cui == PULMONARY_EMBOLISM and tokens[start].text == "PE":
        neighbours = (prev_glued, next_glued, prev, nxt)
        if any(_FLUOROCHROME.match(w) for w in neighbours if w) or "polyethylene" in text.lower():
            return "fluorochrome or polymer"
    if cui == ULTRASOUND and tokens[start].text == "US":
        if nxt in ("dollar", "dollars", "$", "population", "states", "government", "census", "fda"):
            return "United States"
        if prev == "the" and (not nxt or not nxt[0].isalnum() or nxt in _AFTER_COUNTRY):
            return "United States"
    return None
