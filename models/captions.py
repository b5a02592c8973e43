"""K captions per class (not per image), filtered, then joined back to the images.

Flow (the lead's Beam stage wires these; nothing here imports Beam):

1. ``plan = plan_requests(card, label_sets, k)``: one request per distinct set of positive labels that
   occurs in the data. Single-label data gives one request per class; multi-label data one per label
   combination actually present (captions then compose exactly those findings; uncertain and negative
   labels must not be passed in, so they are never mentioned). Label sets the card cannot describe
   come back in ``plan.errors`` with a reason code instead of a request.
2. ``generator.run(plan.requests)`` -> one :class:`ClassCaptions` per request: the plain template
   caption ("Chest X-ray showing cardiomegaly.") first, then the backend's captions, all through the
   post-filters of curation.caption_filters; rejected ones are kept with their reasons
   (:meth:`ClassCaptions.reject_records`).
3. ``attach_captions(record, class_captions, mode)`` per image, joined on
   ``label_set_key(record.class_labels)``: mode "list" stores all accepted captions in
   ``record.captions`` (training samples one per step, as UniMed does; ``caption`` is the plain one),
   mode "records" writes one record per caption with ids ``<record id>/<k>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from connectors.dataset_card import CaptionFacts, CardError, DatasetCard, label_set_key
from curation.caption_filters import CaptionCandidate, CaptionContext, CaptionFilter, CaptionLimits
from models.llm import BackendConfig, build_backend
from models.llm.base import CaptionBackend, CaptionRequest, CaptionResult
from models.llm.template import plain_caption
from schemas.errors import ReasonError
from schemas.records import PairRecord, RejectRecord

DEFAULT_K = 10
CAPTION_STAGE = "captions"
NO_CAPTION = "caption_none"


class CaptionError(ReasonError, ValueError):
    """Why an image gets no caption (`caption_none`)."""


@dataclass
class RequestPlan:
    requests: list[CaptionRequest]
    errors: dict[str, CardError]  # label_set_key -> why no caption can be made for that label set


def plan_requests(card: DatasetCard, label_sets: Iterable[Iterable[str]], k: int = DEFAULT_K) -> RequestPlan:
    """One request per distinct label set, in first-seen order."""
    requests: dict[str, CaptionRequest] = {}
    errors: dict[str, CardError] = {}
    for labels in label_sets:
        key = label_set_key(labels)
        if key in requests or key in errors:
            continue
        try:
            requests[key] = CaptionRequest(card.facts(labels), n=k)
        except CardError as exc:
            errors[key] = exc
    return RequestPlan(list(requests.values()), errors)


def caption_context(card: DatasetCard, facts: CaptionFacts) -> CaptionContext:
    """What the post-filters check captions of `facts` against: this card's words for the labels, the
    modality and every other class."""
    others = tuple(t for c in card.classes if c.name not in facts.labels for t in c.terms)
    return CaptionContext(
        label_terms=tuple(c.terms for c in facts.findings),
        modality_terms=facts.modality_terms,
        other_class_terms=others,
        normal=facts.normal,
    )


@dataclass
class RejectedCaption:
    index: int  # position among the candidates (0: the plain template caption)
    text: str
    reason: str
    detail: str = ""


@dataclass
class ClassCaptions:
    """The accepted and rejected captions of one label set."""

    dataset: str
    labels: tuple[str, ...]
    captions: list[str] = field(default_factory=list)  # accepted, the plain template caption first
    caption_models: list[str] = field(default_factory=list)  # per accepted caption: "template" | backend's
    rejected: list[RejectedCaption] = field(default_factory=list)
    text_model: str = "template"  # the backend's
    cached: bool = False

    @property
    def key(self) -> str:
        return label_set_key(self.labels)

    def reject_records(self, stage: str = CAPTION_STAGE) -> list[RejectRecord]:
        """One reject row per rejected caption (id ``cls/<dataset>/labels/<key>/<index>``)."""
        return [
            RejectRecord(
                id=f"cls/{self.dataset}/labels/{self.key}/{r.index}",
                stage=stage,
                reason=r.reason,
                detail=f"{r.detail} | {self.text_model} | {r.text[:300]}",
                source="classification",
            )
            for r in self.rejected
        ]


class CaptionGenerator:
    """A backend plus the post-filters: construct once per worker, `run` on batches, `close` at the end.

    With `keep_template` (default) the plain template caption is one of the K: an LLM backend is asked
    for K-1 more. The template backend makes all K itself.
    """

    def __init__(
        self,
        backend: CaptionBackend,
        cards: Iterable[DatasetCard],
        limits: CaptionLimits | None = None,
        keep_template: bool = True,
    ):
        self.backend = backend
        self.cards = {c.name: c for c in cards}
        self.filter = CaptionFilter(limits or CaptionLimits())
        self.keep_template = keep_template

    @classmethod
    def from_config(
        cls, config: BackendConfig, cards: Iterable[DatasetCard], limits: CaptionLimits | None = None
    ) -> CaptionGenerator:
        return cls(build_backend(config), cards, limits)

    def _add_template(self) -> bool:
        return self.keep_template and self.backend.name != "template"

    def run(self, requests: list[CaptionRequest]) -> list[ClassCaptions]:
        """One ClassCaptions per request, in order. A failed backend call keeps the template caption and
        records the failure as a rejected caption (reason `caption_llm_error`)."""
        extra = 1 if self._add_template() else 0
        asked = [dataclasses.replace(r, n=r.n - extra) if r.n - extra > 0 else None for r in requests]
        to_backend = [a for a in asked if a is not None]
        results = iter(self.backend.generate(to_backend)) if to_backend else iter(())
        out = []
        for request, sent in zip(requests, asked, strict=True):
            result = next(results) if sent is not None else None
            out.append(self._filter(request, result))
        return out

    def _filter(self, request: CaptionRequest, result: CaptionResult | None) -> ClassCaptions:
        facts = request.facts
        card = self.cards.get(facts.dataset)
        if card is None:
            raise KeyError(f"no card named {facts.dataset!r} was given to this CaptionGenerator")
        candidates: list[tuple[CaptionCandidate, str]] = []
        if self._add_template():
            candidates.append((CaptionCandidate(plain_caption(facts)), "template"))
        text_model = result.text_model if result is not None else "template"
        if result is not None:
            candidates += [(c, result.text_model) for c in result.candidates]
        verdicts = self.filter.run([c for c, _ in candidates], caption_context(card, facts))
        out = ClassCaptions(
            facts.dataset, facts.labels, text_model=text_model, cached=bool(result and result.cached)
        )
        for i, ((_, model), verdict) in enumerate(zip(candidates, verdicts, strict=True)):
            if verdict.keep:
                out.captions.append(verdict.text)
                out.caption_models.append(model)
            else:
                out.rejected.append(RejectedCaption(i, verdict.text, verdict.reason or "", verdict.detail))
        if result is not None and result.error:
            reason, _, detail = result.error.partition(": ")
            out.rejected.append(RejectedCaption(len(candidates), "", reason, detail))
        return out

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> CaptionGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def attach_captions(
    record: PairRecord, captions: ClassCaptions, mode: Literal["list", "records"] = "list"
) -> list[PairRecord]:
    """The record(s) for one image with the captions of its label set.

    "list": one record, `captions` = every accepted caption, `caption` = the first (the plain one),
    `text_model` = the backend's when any of its captions survived, else "template".
    "records": one record per caption, id ``<record.id>/<k>``, each with its own `text_model`.
    Raises CaptionError(`caption_none`) when every caption of the label set was rejected.
    """
    if not captions.captions:
        reasons = sorted({r.reason for r in captions.rejected})
        raise CaptionError(
            NO_CAPTION, f"every caption of {captions.key!r} was rejected ({', '.join(reasons)})"
        )
    if mode == "list":
        model = captions.text_model if captions.text_model in captions.caption_models else "template"
        return [
            dataclasses.replace(
                record, caption=captions.captions[0], captions=list(captions.captions), text_model=model
            )
        ]
    if mode == "records":
        return [
            dataclasses.replace(
                record, id=f"{record.id}/{k}", caption=text, captions=[text], text_model=model
            )
            for k, (text, model) in enumerate(zip(captions.captions, captions.caption_models, strict=True))
        ]
    raise ValueError(f"unknown caption mode {mode!r}: 'list' or 'records'")
