"""The one small interface every caption backend implements, and the values that cross it.

A backend is constructed once (per Beam worker: in `DoFn.setup` or a `ModelHandler.load_model`), then
`generate(requests)` is called on large batches, and `close()` stops whatever it started (an engine,
its child processes, connection pools). A failed request never raises out of `generate`: its result
carries `error` (reason code `caption_llm_error`) so one bad call does not stop a run.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from connectors.dataset_card import CaptionFacts
from curation.caption_filters import CaptionCandidate

LLM_ERROR = "caption_llm_error"


@dataclass(frozen=True)
class SamplingOptions:
    """Sampling for LLM backends; part of every cache key."""

    temperature: float = 0.8
    top_p: float = 0.95
    # vLLM's SamplingParams default is 16 tokens, which truncates most captions: always set it.
    max_tokens: int = 96
    seed: int = 0  # mixed with each request's key, so a request's outputs do not depend on its batch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def request_seed(self, request_key: str) -> int:
        digest = hashlib.sha256(f"{self.seed}:{request_key}".encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class CaptionRequest:
    """Generate `n` captions for images with exactly these facts (one label combination of a card)."""

    facts: CaptionFacts
    n: int = 10

    @property
    def key(self) -> str:
        """A stable id: "<dataset>/<labels joined by +>"."""
        return f"{self.facts.dataset}/{self.facts.key}"


@dataclass
class CaptionResult:
    request: CaptionRequest
    candidates: list[CaptionCandidate] = field(default_factory=list)
    text_model: str = ""  # provenance for PairRecord.text_model: "template", "vllm:<model>", "openai:<model>"
    cached: bool = False
    error: str | None = None  # why the call failed (after retries); candidates are then empty


@runtime_checkable
class CaptionBackend(Protocol):
    name: str  # "template" | "vllm" | "openai"
    text_model: str

    def generate(self, requests: list[CaptionRequest]) -> list[CaptionResult]:
        """One result per request, in order."""
        ...

    def cache_identity(self, request: CaptionRequest) -> dict[str, Any] | None:
        """Everything that determines this request's outputs (backend, model, prompt, sampling), or None
        for a backend not worth caching."""
        ...

    def close(self) -> None: ...
