"""Captions from templates: no model, deterministic, for users without a GPU and as the plain caption
kept among LLM captions ("Chest X-ray showing cardiomegaly.")."""

from __future__ import annotations

from typing import Any

from connectors.dataset_card import CaptionFacts
from curation.caption_filters import CaptionCandidate
from models.llm.base import CaptionRequest, CaptionResult

# Placeholders: {am} anatomy + modality ("chest X-ray"), {m} modality, {of} " of the <anatomy>" or "",
# {a} anatomy or "body", {f} the findings ("cardiomegaly and pleural effusion"). Index 0 is the plain one.
FINDING_TEMPLATES = (
    "{am} showing {f}.",
    "{f} on {am}.",
    "{m}{of} demonstrating {f}.",
    "{am} with {f}.",
    "{m} image{of} with evidence of {f}.",
    "{f} seen on {m}{of}.",
    "{am} demonstrating {f}.",
    "{m}{of} revealing {f}.",
    "{f} visible on this {am}.",
    "{am} in a case of {f}.",
    "{m} scan{of} showing {f}.",
    "{am}: {f}.",
)
NORMAL_TEMPLATES = (
    "Normal {am}.",
    "{am} with no abnormality.",
    "{m}{of} showing no abnormal findings.",
    "Unremarkable {am}.",
    "{am} within normal limits.",
    "{m} of a normal {a}.",
    "Normal appearance{of} on {m}.",
    "{am} showing no abnormality.",
    "Healthy {a} on {m}.",
    "{am}: normal study.",
)


def join_phrases(phrases: list[str]) -> str:
    if len(phrases) <= 2:
        return " and ".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def template_captions(facts: CaptionFacts, n: int | None = None) -> list[str]:
    """Up to `n` distinct captions (all templates when n is None), the plain one first."""
    modality = facts.modality or "image"
    values = {
        "am": f"{facts.anatomy} {modality}" if facts.anatomy else modality,
        "m": modality,
        "of": f" of the {facts.anatomy}" if facts.anatomy else "",
        "a": facts.anatomy or "body",
        "f": join_phrases([c.phrase for c in facts.findings]),
    }
    templates = NORMAL_TEMPLATES if facts.normal else FINDING_TEMPLATES
    out = [_capitalise(t.format(**values)) for t in templates[: n if n is not None else len(templates)]]
    return list(dict.fromkeys(out))


def plain_caption(facts: CaptionFacts) -> str:
    return template_captions(facts, 1)[0]


def _capitalise(text: str) -> str:
    # Only the first letter: "X-ray", "CT" and "MRI" keep their case; "image of ..." becomes "Image of ...".
    return text[:1].upper() + text[1:]


class TemplateBackend:
    """No model: returns min(n, number of templates) distinct template captions per request."""

    name = "template"
    text_model = "template"

    def generate(self, requests: list[CaptionRequest]) -> list[CaptionResult]:
        return [
            CaptionResult(
                request=r,
                candidates=[CaptionCandidate(text) for text in template_captions(r.facts, r.n)],
                text_model=self.text_model,
            )
            for r in requests
        ]

    def cache_identity(self, request: CaptionRequest) -> dict[str, Any] | None:
        return None  # cheaper to recompute than to read back

    def close(self) -> None:
        pass
