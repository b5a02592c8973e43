"""Dataset cards: the few facts about a classification dataset that captions may state.

A card is a small YAML file per dataset (example: tests/connectors/data/cards/demo.yaml)::

    name: liver-ct
    modality: CT                      # optional; unknown when absent
    modality_synonyms: [CAT scan]     # optional; common synonyms are built in (CT -> computed tomography)
    anatomy: liver                    # optional
    classes:
      lesion:
        description: a focal liver lesion
        synonyms: [hepatic lesion, liver mass]
      normal:
        normal: true                  # "normal" is stated as such (names like "normal", "No Finding" are
                                      # recognised without this)

`classes` may also be a plain list of names. A class may override `modality`/`anatomy`, for
collections that mix modalities. The card is all the LLM is told about an image: nothing else is
invented. Without a card, :meth:`DatasetCard.default` builds one from the class names and, where the
files say it, the DICOM modality (see :func:`modality_from_dicom`).

Errors raise :class:`CardError` with a stable `reason`: `card_invalid` (a malformed card),
`card_unknown_class` (a label the card does not list), `label_conflict` (labels that cannot describe one
image: "normal" together with a finding, or classes of different modalities).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from connectors.fs import read_bytes
from schemas.errors import ReasonError

MAX_CARD_BYTES = 1024**2


class CardError(ReasonError, ValueError):
    """A card that cannot be used, or labels it cannot describe (`card_invalid`, `card_unknown_class`, `label_conflict`)."""


# Names that mean "no finding" without the card saying `normal: true`.
_NORMAL_NAMES = {"normal", "no finding", "no findings", "healthy", "no disease", "no abnormality", "negative"}

# Canonical modality -> the words a caption may use for it. A trailing "*" matches any word ending
# ("mammogra*" matches mammogram and mammography). Keys and terms are in normalised form (see `normalise`).
MODALITY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "ct": ("ct", "computed tomography", "cat scan"),
    "mri": ("mri", "mr", "magnetic resonance"),
    "x ray": ("x ray", "xray", "radiograph*", "cxr", "roentgenogra*"),
    "ultrasound": ("ultrasound", "sonogra*", "ultrasonogra*", "echocardiogra*"),
    "pet": ("pet", "positron emission tomography"),
    "mammography": ("mammogra*",),
    "fundus photograph": ("fundus", "fundus photograph*", "retinal photograph*", "fundoscop*", "funduscop*"),
    "histopathology": ("histopatholog*", "histolog*", "h&e", "micrograph*", "stain*"),
    "dermoscopy": ("dermoscop*", "dermatoscop*"),
    "oct": ("oct", "optical coherence tomography"),
    "endoscopy": ("endoscop*", "colonoscop*", "gastroscop*"),
    "angiography": ("angiogra*",),
    "nuclear medicine": ("nuclear medicine", "scintigra*", "spect"),
    "fluoroscopy": ("fluoroscop*",),
}
_MODALITY_ALIASES = {
    "mr": "mri",
    "magnetic resonance imaging": "mri",
    "computed tomography": "ct",
    "xray": "x ray",
    "radiograph": "x ray",
    "radiography": "x ray",
    "cxr": "x ray",
    "chest x ray": "x ray",
    "us": "ultrasound",
    "mammogram": "mammography",
    "fundus": "fundus photograph",
    "fundus photography": "fundus photograph",
    "histology": "histopathology",
    "pathology": "histopathology",
}

# DICOM (0008,0060) Modality codes -> the word a caption uses. Codes that say nothing about the picture
# (OT "other", SR, PR, KO ...) map to None: the modality stays unknown.
DICOM_MODALITY_NAMES: dict[str, str] = {
    "CT": "CT",
    "MR": "MRI",
    "CR": "X-ray",
    "DX": "X-ray",
    "DR": "X-ray",
    "IO": "X-ray",
    "PX": "X-ray",
    "RG": "X-ray",
    "RF": "fluoroscopy",
    "XA": "angiography",
    "MG": "mammography",
    "US": "ultrasound",
    "PT": "PET",
    "NM": "nuclear medicine",
    "ES": "endoscopy",
    "OP": "fundus photograph",
    "OPT": "OCT",
    "OCT": "OCT",
    "SM": "histopathology",
    "GM": "microscopy",
}


def modality_from_dicom(code: str | None) -> str | None:
    """The caption word for a DICOM Modality code, or None when the code names no picture modality."""
    return DICOM_MODALITY_NAMES.get((code or "").strip().upper())


def normalise(text: str) -> str:
    """Lower case, hyphens/underscores/slashes as spaces, single spaces: the form cards and captions
    are compared in."""
    return re.sub(r"\s+", " ", re.sub(r"[-_/]", " ", text.lower())).strip()


def humanise_label(label: str) -> str:
    """The phrase a caption uses for a class name: "Diabetic_Retinopathy" -> "diabetic retinopathy";
    acronyms and tokens with digits keep their case ("COVID-19 pneumonia")."""
    tokens = re.sub(r"[_]+", " ", label).split()
    return " ".join(
        t if (t.isupper() and len(t) > 1) or any(c.isdigit() for c in t) else t.lower() for t in tokens
    )


def modality_terms(modality: str | None, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Every word a caption may use for `modality` (normalised), the modality itself first. Empty when
    the modality is unknown."""
    if not modality:
        return ()
    key = normalise(modality)
    key = _MODALITY_ALIASES.get(key, key)
    terms = [normalise(modality), *MODALITY_SYNONYMS.get(key, ()), *(normalise(e) for e in extra)]
    return tuple(dict.fromkeys(t for t in terms if t))


@dataclass(frozen=True)
class CardClass:
    name: str  # the label exactly as the dataset spells it
    description: str | None = None
    synonyms: tuple[str, ...] = ()
    normal: bool = False
    modality: str | None = None  # overrides the card's, for mixed collections
    anatomy: str | None = None

    @property
    def phrase(self) -> str:
        """How a caption names this class: the humanised label, or for a label without letters (a
        grade "2") its first synonym."""
        if not re.search(r"[^\W\d_]", self.name) and self.synonyms:
            return self.synonyms[0]
        return humanise_label(self.name)

    @property
    def terms(self) -> tuple[str, ...]:
        """The phrase and synonyms, normalised: a caption of this class must contain one of them."""
        names = [self.phrase, *self.synonyms]
        return tuple(dict.fromkeys(normalise(n) for n in names if re.search(r"[^\W\d_]", n)))


@dataclass(frozen=True)
class CaptionFacts:
    """What one caption may say: the resolved facts for one set of positive labels of a card."""

    dataset: str
    labels: tuple[str, ...]  # positive labels, in card order
    modality: str | None
    modality_terms: tuple[str, ...]
    anatomy: str | None
    findings: tuple[CardClass, ...]  # the classes of `labels`
    normal: bool  # the only label is a normal class

    @property
    def key(self) -> str:
        """The join key of this label combination (see :func:`label_set_key`)."""
        return label_set_key(self.labels)


def label_set_key(labels: Iterable[str]) -> str:
    """A stable, order-free id for a set of positive labels: "cardiomegaly+effusion". Samples and their
    captions are joined on it, without needing the card."""
    return "+".join(sorted(set(labels)))


@dataclass(frozen=True)
class DatasetCard:
    name: str
    classes: tuple[CardClass, ...]
    modality: str | None = None
    anatomy: str | None = None
    modality_synonyms: tuple[str, ...] = ()
    description: str | None = None  # for people reading the card; never told to the LLM
    is_default: bool = False  # built from class names, not read from a file
    _by_name: dict[str, CardClass] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise CardError("card_invalid", "a card needs a `name`")
        if not self.classes:
            raise CardError("card_invalid", f"card {self.name!r} lists no classes")
        for c in self.classes:
            if c.name in self._by_name:
                raise CardError("card_invalid", f"card {self.name!r} lists class {c.name!r} twice")
            if not c.terms:
                raise CardError(
                    "card_invalid",
                    f"class {c.name!r} of card {self.name!r} has no words a caption could name it by; give it synonyms",
                )
            self._by_name[c.name] = c

    @classmethod
    def default(cls, name: str, class_names: Iterable[str], modality: str | None = None) -> DatasetCard:
        """A card from class names alone: the class name is the label, the modality is what the files
        say (e.g. ``modality_from_dicom(ds.Modality)``) or unknown, normal classes recognised by name."""
        classes = tuple(
            CardClass(n, normal=normalise(n) in _NORMAL_NAMES) for n in dict.fromkeys(class_names)
        )
        return cls(name=name, classes=classes, modality=modality, is_default=True)

    @classmethod
    def from_dict(cls, data: Any, where: str = "card") -> DatasetCard:
        if not isinstance(data, Mapping):
            raise CardError("card_invalid", f"{where}: expected a mapping at the top level")
        unknown = set(data) - {"name", "modality", "modality_synonyms", "anatomy", "description", "classes"}
        if unknown:
            raise CardError("card_invalid", f"{where}: unknown keys {sorted(unknown)}")
        raw_classes = data.get("classes")
        if isinstance(raw_classes, Mapping):
            items = list(raw_classes.items())
        elif isinstance(raw_classes, Sequence) and not isinstance(raw_classes, str):
            items = [(n, None) for n in raw_classes]
        else:
            items = []
        if not items:
            raise CardError("card_invalid", f"{where}: `classes` must be a non-empty mapping or list")
        classes = tuple(_card_class(str(n), spec, where) for n, spec in items)
        return cls(
            name=_str(data.get("name"), "name", where, required=True),
            classes=classes,
            modality=_str(data.get("modality"), "modality", where),
            anatomy=_str(data.get("anatomy"), "anatomy", where),
            modality_synonyms=_str_list(data.get("modality_synonyms"), "modality_synonyms", where),
            description=_str(data.get("description"), "description", where),
        )

    @classmethod
    def from_yaml(cls, text: str, where: str = "card") -> DatasetCard:
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise CardError("card_invalid", f"{where}: not valid YAML ({exc})") from exc
        return cls.from_dict(data, where)

    def to_dict(self) -> dict[str, Any]:
        """The card as YAML-ready data (round-trips through :meth:`from_dict`); for manifests."""
        classes: dict[str, Any] = {}
        for c in self.classes:
            spec = {
                "description": c.description,
                "synonyms": list(c.synonyms) or None,
                "normal": c.normal or None,
                "modality": c.modality,
                "anatomy": c.anatomy,
            }
            classes[c.name] = {k: v for k, v in spec.items() if v is not None} or None
        out = {
            "name": self.name,
            "modality": self.modality,
            "modality_synonyms": list(self.modality_synonyms) or None,
            "anatomy": self.anatomy,
            "description": self.description,
            "classes": classes,
        }
        return {k: v for k, v in out.items() if v is not None}

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    def get(self, label: str) -> CardClass:
        try:
            return self._by_name[label]
        except KeyError:
            raise CardError(
                "card_unknown_class", f"label {label!r} is not a class of card {self.name!r}"
            ) from None

    def missing_classes(self, labels: Iterable[str]) -> list[str]:
        """The labels found in the data that this card does not describe (check before a run)."""
        return sorted({str(label) for label in labels} - set(self._by_name))

    def facts(self, labels: Iterable[str]) -> CaptionFacts:
        """The facts a caption for an image with these positive labels may state.

        Raises CardError: `card_unknown_class`, or `label_conflict` for no labels, a normal class with
        a finding, or classes of different modalities/anatomies.
        """
        wanted = set(labels)
        found = [c for c in self.classes if c.name in wanted]  # card order: a stable key
        if len(found) < len(wanted):
            self.get(sorted(wanted - {c.name for c in found})[0])
        if not found:
            raise CardError("label_conflict", f"no positive label (card {self.name!r})")
        if len(found) > 1 and any(c.normal for c in found):
            raise CardError("label_conflict", f"a normal class with findings: {[c.name for c in found]}")
        modalities = {c.modality or self.modality for c in found}
        anatomies = {c.anatomy or self.anatomy for c in found}
        if len(modalities) > 1 or len(anatomies) > 1:
            raise CardError(
                "label_conflict", f"classes of different modality/anatomy: {[c.name for c in found]}"
            )
        modality, anatomy = modalities.pop(), anatomies.pop()
        return CaptionFacts(
            dataset=self.name,
            labels=tuple(c.name for c in found),
            modality=modality,
            modality_terms=modality_terms(
                modality, self.modality_synonyms if modality == self.modality else ()
            ),
            anatomy=anatomy,
            findings=tuple(found),
            normal=found[0].normal,
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (plain YAML keeps the last one: a class would vanish)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue  # unhashable keys are refused by the base class
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_card(url: str) -> DatasetCard:
    """Read a card from a local path or any fsspec URL."""
    data = read_bytes(url, max_bytes=MAX_CARD_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CardError("card_invalid", f"{url}: not UTF-8") from exc
    return DatasetCard.from_yaml(text, where=url)


def _card_class(name: str, spec: Any, where: str) -> CardClass:
    if spec is None:
        spec = {}
    if isinstance(spec, str):  # `lesion: a focal liver lesion`
        spec = {"description": spec}
    if not isinstance(spec, Mapping):
        raise CardError("card_invalid", f"{where}: class {name!r} must map to a mapping, a string or nothing")
    unknown = set(spec) - {"description", "synonyms", "normal", "modality", "anatomy"}
    if unknown:
        raise CardError("card_invalid", f"{where}: class {name!r} has unknown keys {sorted(unknown)}")
    normal = spec.get("normal")
    if normal is not None and not isinstance(normal, bool):
        raise CardError("card_invalid", f"{where}: class {name!r}: `normal` must be true or false")
    return CardClass(
        name=name,
        description=_str(spec.get("description"), f"classes.{name}.description", where),
        synonyms=_str_list(spec.get("synonyms"), f"classes.{name}.synonyms", where),
        normal=normal if normal is not None else normalise(name) in _NORMAL_NAMES,
        modality=_str(spec.get("modality"), f"classes.{name}.modality", where),
        anatomy=_str(spec.get("anatomy"), f"classes.{name}.anatomy", where),
    )


def _str(value: Any, key: str, where: str, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise CardError("card_invalid", f"{where}: `{key}` is required")
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise CardError("card_invalid", f"{where}: `{key}` must be a string")
    return str(value).strip()


def _str_list(value: Any, key: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) and v.strip() for v in value):
        raise CardError("card_invalid", f"{where}: `{key}` must be a list of non-empty strings")
    return tuple(v.strip() for v in value)
