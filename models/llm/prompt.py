"""The chat prompt for caption generation: it grounds the model in the dataset card and nothing else.

The model is told the modality, the body part and the finding(s) (or that the image is normal), and
asked for one short sentence that states them, and forbidden to add other findings, severity, size,
counts or patient details. Structured output (JSON Schema) keeps the answer to `{"caption": "..."}`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.dataset_card import CaptionFacts

if TYPE_CHECKING:
    from models.llm.base import CaptionRequest, SamplingOptions

PROMPT_VERSION = "1"  # bump when the wording changes: it is part of every cache key

SYSTEM_PROMPT = (
    "You write captions for medical images in a training data set. You cannot see the image: you are "
    "given the only facts known about it, and the caption must state those facts and nothing else. "
    'Answer with JSON only: {"caption": "<one sentence>"}.'
)

# maxLength keeps a runaway generation bounded even when the token limit is generous.
CAPTION_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"caption": {"type": "string", "minLength": 8, "maxLength": 300}},
    "required": ["caption"],
    "additionalProperties": False,
}


def facts_text(facts: CaptionFacts) -> str:
    lines = [f"- Imaging modality: {facts.modality or 'unknown (say medical image)'}"]
    if facts.anatomy:
        lines.append(f"- Body part: {facts.anatomy}")
    if facts.normal:
        cls = facts.findings[0]
        lines.append(
            "- Finding: none. The image is normal (no abnormality)"
            + (f"; the data set calls this class {cls.phrase!r}" if cls.phrase.lower() != "normal" else "")
        )
    else:
        label = "Finding" if len(facts.findings) == 1 else "Findings (all present in the same image)"
        lines.append(f"- {label}:")
        for cls in facts.findings:
            extra = [f"meaning: {cls.description}"] if cls.description else []
            if cls.synonyms:
                extra.append("also called: " + ", ".join(cls.synonyms))
            lines.append(f"  - {cls.phrase}" + (f" ({'; '.join(extra)})" if extra else ""))
    return "\n".join(lines)


def user_prompt(facts: CaptionFacts) -> str:
    names = "the modality, the body part" if facts.anatomy else "the modality"
    if facts.normal:
        names += " and that the image is normal"
    elif len(facts.findings) == 1:
        names += " and the finding"
    else:
        names += " and every finding"
    return (
        "Facts about the image (this is everything that is known):\n"
        f"{facts_text(facts)}\n\n"
        f"Write one caption for this image: a single short sentence of 5 to 25 words that names {names}.\n"
        "Rules: do not mention any other finding or disease; do not add severity, size, number, side or "
        "location details that are not in the facts; no patient details (age, sex, history); no "
        "uncertainty, advice or commentary; do not address the reader."
    )


def build_messages(facts: CaptionFacts) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_prompt(facts)}]


def call_identity(
    backend: str, model: str, request: CaptionRequest, sampling: SamplingOptions, json_output: bool
) -> dict[str, Any]:
    """Everything that determines an LLM call's outputs: the cache key of a `CaptionRequest` sent to a
    chat model with these `SamplingOptions`."""
    return {
        "backend": backend,
        "model": model,
        "prompt_version": PROMPT_VERSION,
        "messages": build_messages(request.facts),
        "n": request.n,
        "sampling": sampling.to_dict(),
        "seed": sampling.request_seed(request.key),
        "json_schema": CAPTION_JSON_SCHEMA if json_output else None,
    }
