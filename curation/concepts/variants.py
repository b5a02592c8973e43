"""Lexical variants of a KB's names: plurals, derived adjectives and hyphen spellings, looked up exactly.

MetaMap finds "renal" for Kidney and "nevi" for Nevus through the SPECIALIST lexicon's variants; the
char-3-gram similarity scispacy links with finds neither ("renal" shares no 3-gram with "kidney", and
"nevi" is too short to score). This module gives the tagger the same reach with a small table:

* derived adjectives read from the KB's own strings: an alias "<adjective> <head>" whose head is one of
  `_DERIVING_HEADS` ("Renal structure", "Pelvic region", "Femoral bone", "Endoscopic procedure") says
  that the adjective alone names the concept (renal -> Kidney, endoscopic -> Endoscopy);
* noun/adjective pairs of procedure names (-graphy -> -graphic / -gram / -graph, -scopy -> -scopic), so
  "sonographic", "sonogram", "electron microscopic" name their procedures;
* plurals of every alias, regular and Latin/Greek irregular (nevus -> nevi, vertebra -> vertebrae,
  testis -> testes, radiograph -> radiographs, imaging -> images);
* hyphen spellings: "eye-lid" finds "Eyelid", "X ray" finds "X-ray";
* `curation/data/derived_forms.tsv`: forms the KB's strings do not give (prostatic, ovarian, cerebral,
  metastatic, osseous...) and the adjectives too ambiguous to use (cervical: neck, cervix uteri or
  cervical spine; iliac: ilium or the iliac vessels).

A variant links with `VARIANT_SCORE`: below an exact alias (1.0), so an exact alias of another concept
wins, and above the linker's threshold, so the score stored with a concept is the one that passed it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

EXACT_SCORE = 1.0
VARIANT_SCORE = 0.95

# Heads after which the first word of a two-word alias is an adjective naming the concept itself.
_DERIVING_HEADS = frozenset(
    {
        "structure",
        "region",
        "tissue",
        "tissues",
        "bone",
        "procedure",
        "examination",
        "imaging",
        "analysis",
        "staining",
    }
)
_ADJECTIVE_ENDINGS = ("al", "ic", "ac", "ar", "ary", "ous", "ine", "eal", "ial", "ical")

# Latin and Greek plurals, then the regular English rules, applied to an alias's last word.
_IRREGULAR_PLURALS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("us", ("i", "uses")),  # nevus -> nevi, calculus -> calculi, bronchus -> bronchi
    ("um", ("a", "ums")),  # diverticulum -> diverticula
    ("is", ("es",)),  # testis -> testes, metastasis -> metastases
    ("ix", ("ices", "ixes")),  # cervix -> cervices
    ("ex", ("ices", "exes")),  # cortex -> cortices
    ("oma", ("omas", "omata")),  # carcinoma -> carcinomata
    ("ia", ("ias",)),  # pneumonia -> pneumonias, never "pneumoniae" (Streptococcus pneumoniae)
    ("za", ("zas",)),  # influenza -> influenzas, never "influenzae" (Haemophilus influenzae)
    ("a", ("ae", "as")),  # vertebra -> vertebrae, aorta -> aortas
    ("rion", ("ria", "rions")),  # mitochondrion -> mitochondria
)
_WORD = re.compile(r"[^\W_]+(?:['’]s)?")


def derived_forms_path() -> Path:
    return Path(str(resources.files("curation") / "data" / "derived_forms.tsv"))


def normalize(text: str) -> str:
    """The key a mention and an alias are compared by: lower case, single spaces, no space around hyphens."""
    text = " ".join(text.lower().replace("’", "'").split())
    return re.sub(r"\s*([-/])\s*", r"\1", text)


def _spellings(key: str) -> set[str]:
    """A normalized name with its hyphen spellings: "x-ray", "x ray", "xray"."""
    out = {key}
    if "-" in key:
        out |= {key.replace("-", " "), key.replace("-", "")}
    return out


def plurals(word: str) -> set[str]:
    """English and Latin/Greek plural candidates of one lower-case word (some are not words: harmless)."""
    if len(word) < 3 or not word.isalpha():
        return set()
    out: set[str] = set()
    for ending, replacements in _IRREGULAR_PLURALS:
        if word.endswith(ending):
            out |= {word[: -len(ending)] + r for r in replacements}
            break
    if word.endswith("aging"):  # "MR imaging" -> "MR images"
        out |= {word[:-3] + "e", word[:-3] + "es"}
    if word.endswith("y") and word[-2] not in "aeiou":
        out.add(word[:-1] + "ies")
    elif word.endswith(("s", "x", "ch", "sh", "z")):
        out.add(word + "es")
    else:
        out.add(word + "s")
    return out


def _procedure_forms(word: str) -> set[str]:
    """The adjective and product nouns of a procedure name: sonography -> sonographic, sonogram."""
    if word.endswith("graphy"):
        stem = word[: -len("graphy")]
        return {stem + "graphic", stem + "gram", stem + "grams", stem + "graph", stem + "graphs"}
    if word.endswith("scopy"):
        return {word[: -len("scopy")] + "scopic"}
    return set()


@dataclass(frozen=True)
class DerivedTable:
    """The curated part of the variant table: extra forms and forms never to use."""

    forms: tuple[tuple[str, str], ...]  # (normalized form, CUI)
    excluded: frozenset[str]  # normalized forms that must not link through a variant


def read_derived_table(path: str | Path | None = None) -> DerivedTable:
    """Rows `form<TAB>CUI<TAB>why` add a form; `form<TAB>-<TAB>why` excludes one; '#' starts a comment."""
    forms: list[tuple[str, str]] = []
    excluded: set[str] = set()
    with open(path or derived_forms_path(), encoding="utf-8") as fh:
        for line in fh:
            line = line.split("#", 1)[0].rstrip()
            if not line.strip():
                continue
            form, cui, *_ = line.split("\t")
            if cui.strip() == "-":
                excluded.add(normalize(form))
            else:
                forms.append((normalize(form), cui.strip()))
    return DerivedTable(tuple(forms), frozenset(excluded))


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def build_variant_index(
    entities: Mapping[str, Any], table: DerivedTable | None = None
) -> dict[str, dict[str, float]]:
    """{normalized text: {CUI: score}} for every alias (EXACT_SCORE) and generated variant (VARIANT_SCORE).

    `entities`: scispacy's `cui_to_entity` (objects with canonical_name and aliases).
    """
    table = table or DerivedTable((), frozenset())
    index: dict[str, dict[str, float]] = {}

    def add(key: str, cui: str, score: float) -> None:
        for spelling in _spellings(key):
            if spelling in table.excluded and score < EXACT_SCORE:
                continue
            entry = index.setdefault(spelling, {})
            entry[cui] = max(entry.get(cui, 0.0), score)

    for cui, entity in entities.items():
        names = [entity.canonical_name, *entity.aliases]
        for name in names:
            key = normalize(name)
            add(key, cui, EXACT_SCORE)
            if not any(c.islower() for c in name):
                continue  # an acronym ("CT", "PET"): "pets" and "cts" are other words
            words = key.split(" ")
            last = words[-1]
            for plural in plurals(last):
                add(" ".join([*words[:-1], plural]), cui, VARIANT_SCORE)
            for form in _procedure_forms(last):
                add(" ".join([*words[:-1], form]), cui, VARIANT_SCORE)
            if (
                len(words) == 2
                and words[1] in _DERIVING_HEADS
                and words[0].endswith(_ADJECTIVE_ENDINGS)
                and words[0].isalpha()
            ):
                add(words[0], cui, VARIANT_SCORE)
    for form, cui in table.forms:
        if cui in entities:
            add(form, cui, VARIANT_SCORE)
            for plural in plurals(form) if " " not in form else set():
                add(plural, cui, VARIANT_SCORE)
    # The adjective stands for its noun inside longer names too, as in the SPECIALIST lexicon's
    # derivational variants: "Kidney stones" -> "renal stones", "Liver tumor" -> "hepatic tumor".
    adjectives: dict[str, set[str]] = {}
    for key, entry in index.items():
        if " " not in key and key.isalpha():
            for cui, score in entry.items():
                if score < EXACT_SCORE and key.endswith(_ADJECTIVE_ENDINGS):
                    for name in (entities[cui].canonical_name, *entities[cui].aliases):
                        if " " not in name.strip():
                            adjectives.setdefault(normalize(name), set()).add(key)
    for cui, entity in entities.items():
        for name in (entity.canonical_name, *entity.aliases):
            words = normalize(name).split(" ")
            if len(words) >= 2 and words[0] in adjectives:
                for adjective in adjectives[words[0]]:
                    if adjective not in table.excluded:
                        add(" ".join([adjective, *words[1:]]), cui, VARIANT_SCORE)
    # A form several concepts derive from ("femoral": Femur, Femoral artery...) is not a variant of any:
    # keep only its exact aliases, or drop it when it has none.
    for key in list(index):
        entry = index[key]
        variants = [c for c, s in entry.items() if s < EXACT_SCORE]
        exact = [c for c, s in entry.items() if s >= EXACT_SCORE]
        if len(variants) > 1 and not exact:
            del index[key]
        elif exact and variants:
            index[key] = {c: s for c, s in entry.items() if s >= EXACT_SCORE}
    return index
