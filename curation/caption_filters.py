"""Post-filters for captions generated from class labels, each rejecting with a stable reason code.

Like datatrove's filters, every check answers keep or (drop, reason): :func:`filter_captions` runs them
over the K candidates of one label combination and returns one :class:`CaptionVerdict` per candidate,
rejected ones included, so they can be written as reject rows.

Reason codes, in the order they are checked:

- `caption_truncated`: the model stopped on its token limit (`finish_reason == "length"`): rejected,
  never cut back to a sentence.
- `caption_invalid_json`: JSON was asked for and the output is not `{"caption": "<text>"}`.
- `caption_junk`: conversational or formatting residue ("As an AI", "I'm glad", "Here is", markdown).
- `caption_too_short` / `caption_too_long`: word, character or sentence count out of bounds.
- `caption_missing_label`: a positive label is named neither by its phrase nor by a synonym (for a
  normal class, generic words such as "normal", "unremarkable" also count).
- `caption_missing_modality`: the modality is known and no word for it appears.
- `caption_other_class`: another class of the same dataset is named.
- `caption_extra_detail`: severity or patient details the card does not state ("severe", "male",
  "45-year-old"); words inside the label itself are allowed.
- `caption_negation`: a finding is negated ("no cardiomegaly") or called normal, or a normal image is
  given an un-negated abnormality ("normal liver with a mass").
- `caption_duplicate`: nearly the same as an earlier kept caption of the same label combination.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

# Every reason a caption can be rejected for, in the order they are checked.
REASONS = (
    "caption_truncated",
    "caption_invalid_json",
    "caption_junk",
    "caption_too_short",
    "caption_too_long",
    "caption_missing_label",
    "caption_missing_modality",
    "caption_other_class",
    "caption_extra_detail",
    "caption_negation",
    "caption_duplicate",
)

# Words that state normality; for a normal class any of them names the label.
NORMAL_TERMS = (
    "normal",
    "no abnormalit*",
    "no abnormal finding*",
    "unremarkable",
    "healthy",
    "no finding*",
    "no disease",
    "no pathology",
    "no lesion*",
    "within normal limits",
)
# Words a finding caption must not use (a finding image is not normal).
NORMALITY_CLAIMS = ("normal", "unremarkable", "healthy", "within normal limits", "no abnormalit*")
# Words that assert an abnormality; a normal caption may only use them negated ("no mass").
ABNORMALITY_TERMS = (
    "abnormal*",
    "lesion*",
    "mass*",
    "tumor*",
    "tumour*",
    "nodul*",
    "fracture*",
    "effusion*",
    "opacit*",
    "consolidation*",
    "hemorrhag*",
    "haemorrhag*",
    "infarct*",
    "cancer*",
    "carcinoma*",
    "malignan*",
    "metasta*",
    "pneumonia",
    "disease*",
    "patholog*",
    "retinopathy",
    "edema",
    "oedema",
    "enlarged",
    "enlargement",
)
NEGATION_CUES = (
    "no",
    "not",
    "without",
    "absence of",
    "absent",
    "negative for",
    "free of",
    "rule out",
    "ruled out",
    "rules out",
    "no evidence of",
    "no sign* of",
    "neither",
    "nor",
)
# Phrases no caption should contain: the model talking, not describing.
JUNK_PATTERNS = (
    r"\bas an ai\b",
    r"\blanguage model\b",
    r"\bi'?m (?:glad|happy|sorry|not able|unable)\b",
    r"\bi am (?:glad|happy|sorry|not able|unable)\b",
    r"\bi (?:cannot|can't|can not|could not|couldn't)\b",
    r"^\s*(?:sure|certainly|of course|absolutely|okay|ok)\b",
    r"\bhere(?:'s| is| are)\b",
    r"\b(?:let me know|hope this helps|feel free|please note|happy to help)\b",
    r"\bcaption\s*:",
    r"\bassistant\b",
    r"\bthis caption\b",
    # the prompt echoed back
    r"\bsingle (?:short )?sentence\b",
    r"\b(?:modality|body part|findings?)\s*:",
    r"\b(?:imaging modality|body part|the facts|criteria provided|as requested|the data ?set|summary)\b",
    r"\*\*|__|```|<\|",
    r"https?://",
    r"[\[{]",
)
_JUNK = re.compile("|".join(JUNK_PATTERNS), re.IGNORECASE)
# Details the card never states, so a caption must not either: severity and the patient.
EXTRA_DETAIL_TERMS = (
    "mild*",
    "moderate*",
    "severe*",
    "massive*",
    "extensive*",
    "advanced",
    "subtle",
    "grade",
    "stage",
    "male",
    "female",
    "man",
    "woman",
    "boy",
    "girl",
    "infant",
    "elderly",
    "pregnan*",
)
_PATIENT_AGE = re.compile(r"\b\d+\s*(?:year|yr|month|week|day)s?\s*old\b|\baged?\s+\d+")
# A negation cue only reaches across words up to one of these (NegEx's termination terms).
_CLAUSE_BREAK = re.compile(
    r"[,;:.()]|\b(?:but|however|although|though|while|whereas|yet|showing|shows|shown|demonstrat\w*|reveal\w*"
    r"|with|which|that|except|besides)\b"
)
# Phrases that look like negations but negate nothing about the finding ("CT without contrast").
_PSEUDO_NEGATION = re.compile(
    r"\b(?:with|without|no|non|not)\s+(?:iv\s+|intravenous\s+)?contrast\b|\bnot only\b"
)


@dataclass(frozen=True)
class CaptionCandidate:
    """One output of a caption backend, as it came."""

    text: str
    finish_reason: str | None = "stop"
    json: bool = False  # the text is JSON that should hold {"caption": ...}


@dataclass(frozen=True)
class CaptionContext:
    """What captions of one label combination are checked against (all terms normalised, see
    connectors.dataset_card.normalise; a trailing "*" matches any word ending)."""

    label_terms: tuple[tuple[str, ...], ...]  # per positive label: its phrase and synonyms
    modality_terms: tuple[str, ...] = ()  # empty: modality unknown, not checked
    other_class_terms: tuple[str, ...] = ()  # every other class's phrase and synonyms
    normal: bool = False


@dataclass(frozen=True)
class CaptionLimits:
    min_words: int = 3
    max_words: int = 30  # the prompt asks for 5 to 25
    max_chars: int = 250
    max_sentences: int = 1  # the prompt asks for one sentence; a second one is where inventions go
    # difflib ratio over the words (case and punctuation ignored) at or above which two are duplicates:
    # 0.9 allows one changed word in about twenty
    duplicate_similarity: float = 0.9


@dataclass(frozen=True)
class CaptionVerdict:
    text: str  # the caption (parsed from JSON when JSON was asked for), or the raw output if unparseable
    reason: str | None = None  # None: kept
    detail: str = ""

    @property
    def keep(self) -> bool:
        return self.reason is None


def parse_candidate(candidate: CaptionCandidate) -> tuple[str | None, str]:
    """(caption text, "") or (None, why) for a JSON candidate; plain candidates pass through stripped."""
    if not candidate.json:
        return candidate.text.strip(), ""
    try:
        data = json.loads(candidate.text)
    except ValueError as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(data, dict) or not isinstance(data.get("caption"), str):
        return None, 'expected {"caption": "<text>"}'
    return data["caption"].strip(), ""


@dataclass
class CaptionFilter:
    """Runs every check in order; the first that fails gives the reason."""

    limits: CaptionLimits = field(default_factory=CaptionLimits)

    def check(self, caption: str, ctx: CaptionContext) -> tuple[str, str] | None:
        """(reason, detail) for a rejected caption, None for a kept one (duplicates are checked by
        :meth:`run`, which sees the whole set)."""
        text = _normalise(caption)
        if _JUNK.search(caption):
            return "caption_junk", f"matched {_JUNK.search(caption).group(0)!r}"
        if reason := self._length(caption):
            return reason
        for terms in ctx.label_terms:
            label_terms = (*terms, *NORMAL_TERMS) if ctx.normal else terms
            if not _find(text, label_terms):
                return "caption_missing_label", f"names none of {list(terms)}"
        if ctx.modality_terms and not _find(text, ctx.modality_terms):
            return "caption_missing_modality", f"names none of {list(ctx.modality_terms)}"
        own = [span for terms in ctx.label_terms for span in _find(text, terms)]
        # A class named inside a positive label ("effusion" inside "pleural effusion") is not a mention of
        # it; one that contains the label ("pleural effusion" for the label "effusion") is.
        others = [
            h for h in _find(text, ctx.other_class_terms) if not any(s <= h[0] and h[1] <= e for s, e in own)
        ]
        if others:
            return "caption_other_class", f"names {text[others[0][0] : others[0][1]]!r}"
        masked = _mask(text, own)  # a label may itself say "severe" (a grading data set)
        if extra := (_find(masked, EXTRA_DETAIL_TERMS) or [m.span() for m in _PATIENT_AGE.finditer(masked)]):
            return "caption_extra_detail", f"adds {text[extra[0][0] : extra[0][1]]!r}"
        return self._negation(text, masked, own, ctx)

    def run(self, candidates: Iterable[CaptionCandidate], ctx: CaptionContext) -> list[CaptionVerdict]:
        verdicts: list[CaptionVerdict] = []
        kept: list[str] = []
        for candidate in candidates:
            if candidate.finish_reason == "length":
                verdicts.append(
                    CaptionVerdict(candidate.text, "caption_truncated", "stopped at the token limit")
                )
                continue
            caption, why = parse_candidate(candidate)
            if caption is None:
                verdicts.append(CaptionVerdict(candidate.text, "caption_invalid_json", why))
                continue
            rejected = self.check(caption, ctx)
            if rejected is None and (twin := self._duplicate_of(caption, kept)) is not None:
                rejected = ("caption_duplicate", f"near-identical to {twin!r}")
            if rejected is None:
                kept.append(caption)
                verdicts.append(CaptionVerdict(caption))
            else:
                verdicts.append(CaptionVerdict(caption, *rejected))
        return verdicts

    def _length(self, caption: str) -> tuple[str, str] | None:
        words = len(caption.split())
        sentences = len([s for s in re.split(r"(?<=[.!?])\s+", caption.strip()) if s])
        if words < self.limits.min_words:
            return "caption_too_short", f"{words} words < {self.limits.min_words}"
        if words > self.limits.max_words:
            return "caption_too_long", f"{words} words > {self.limits.max_words}"
        if len(caption) > self.limits.max_chars:
            return "caption_too_long", f"{len(caption)} characters > {self.limits.max_chars}"
        if sentences > self.limits.max_sentences:
            return "caption_too_long", f"{sentences} sentences > {self.limits.max_sentences}"
        return None

    def _negation(
        self, text: str, masked: str, own: list[tuple[int, int]], ctx: CaptionContext
    ) -> tuple[str, str] | None:
        if ctx.normal:
            for start, end in _find(masked, ABNORMALITY_TERMS):
                if not _negated(text, start):
                    return "caption_negation", f"a normal image given {text[start:end]!r}"
            return None
        for start, end in own:
            if _negated(text, start):
                return "caption_negation", f"the finding {text[start:end]!r} is negated"
        for start, end in _find(masked, NORMALITY_CLAIMS):
            if not _negated(text, start):
                return "caption_negation", f"a finding called {text[start:end]!r}"
        return None

    def _duplicate_of(self, caption: str, kept: Sequence[str]) -> str | None:
        words = _words(caption)
        for other in kept:
            if (
                difflib.SequenceMatcher(None, words, _words(other)).ratio()
                >= self.limits.duplicate_similarity
            ):
                return other
        return None


def filter_captions(
    candidates: Iterable[CaptionCandidate], ctx: CaptionContext, limits: CaptionLimits | None = None
) -> list[CaptionVerdict]:
    """One verdict per candidate, in order: kept ones have `reason is None`."""
    return CaptionFilter(limits or CaptionLimits()).run(candidates, ctx)


def _normalise(text: str) -> str:
    # Same rules as connectors.dataset_card.normalise, kept here so curation does not depend on a card.
    return re.sub(r"\s+", " ", re.sub(r"[-_/]", " ", text.lower())).strip()


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", _normalise(text)).split()


@lru_cache(maxsize=4096)
def _term_pattern(term: str) -> re.Pattern[str]:
    stem, prefix = (term[:-1], True) if term.endswith("*") else (term, False)
    body = r"\s+".join(re.escape(part) for part in stem.split())
    ending = r"\w*" if prefix else r"(?:s|es)?"
    return re.compile(rf"(?<!\w){body}{ending}(?!\w)")


def _find(text: str, terms: Iterable[str]) -> list[tuple[int, int]]:
    spans = [m.span() for term in terms if term for m in _term_pattern(term).finditer(text)]
    return sorted(spans)


def _mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """Blank out the spans (same length): the positive labels' own words are not checked as claims."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


_NEGATION = re.compile(r"(?<!\w)(?:" + "|".join(_term_pattern(c).pattern for c in NEGATION_CUES) + r")(?!\w)")


def _negated(text: str, start: int, window_words: int = 6) -> bool:
    """NegEx-style: a negation cue among the few words before `start`, within the same clause."""
    before = _PSEUDO_NEGATION.sub(" ", text[:start])
    clause = _CLAUSE_BREAK.split(before)[-1]
    window = " ".join(clause.split()[-window_words:])
    return bool(_NEGATION.search(window))
