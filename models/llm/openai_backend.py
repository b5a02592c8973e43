"""The OpenAI-compatible backend: any `/v1/chat/completions` server (`vllm serve`, a hosted endpoint).

Requests run concurrently on a thread pool (the sync `openai` client is thread-safe and this keeps
`generate` callable from code that already runs an event loop). Retries with exponential backoff on
connection errors, timeouts, 408/409/429 and 5xx are the `openai` client's own (it honours
Retry-After); a request that still fails comes back with `error` set instead of raising. JSON output
uses `response_format` with a JSON Schema, which vLLM and OpenAI both accept; `json_output=False`
for servers that do not.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from curation.caption_filters import CaptionCandidate
from models.llm.base import LLM_ERROR, CaptionRequest, CaptionResult, SamplingOptions
from models.llm.prompt import CAPTION_JSON_SCHEMA, build_messages, call_identity
from schemas.errors import ReasonError


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        sampling: SamplingOptions | None = None,
        json_output: bool = True,
        concurrency: int = 32,
        max_retries: int = 5,
        timeout_s: float = 120.0,
    ):
        try:
            import openai
        except ImportError as exc:
            raise ImportError("the openai caption backend needs `pip install openai`") from exc
        self._openai = openai
        self.base_url = base_url
        self.model = model
        self.text_model = f"openai:{model}"
        self.sampling = sampling or SamplingOptions()
        self.json_output = json_output
        # Local servers (vllm serve) take any key; the client refuses to start without one.
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.client = openai.OpenAI(
            base_url=base_url, api_key=key, max_retries=max_retries, timeout=timeout_s
        )
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="caption-openai")

    def cache_identity(self, request: CaptionRequest) -> dict[str, Any]:
        return call_identity(self.name, self.model, request, self.sampling, self.json_output)

    def _one(self, request: CaptionRequest) -> CaptionResult:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": build_messages(request.facts),
            "n": request.n,
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "max_completion_tokens": self.sampling.max_tokens,
            "seed": self.sampling.request_seed(request.key),
        }
        if self.json_output:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "caption", "schema": CAPTION_JSON_SCHEMA, "strict": True},
            }
        try:
            response = self.client.chat.completions.create(**kwargs)
            choices = sorted(response.choices, key=lambda c: c.index)
            if not choices:
                raise ValueError("the server returned no choices")
        except (self._openai.OpenAIError, ValueError, TypeError, AttributeError) as exc:
            return CaptionResult(
                request, text_model=self.text_model, error=f"{LLM_ERROR}: {type(exc).__name__}: {exc}"
            )
        candidates = [
            CaptionCandidate(c.message.content or "", c.finish_reason, self.json_output) for c in choices
        ]
        return CaptionResult(request, candidates, self.text_model)

    def generate(self, requests: list[CaptionRequest]) -> list[CaptionResult]:
        return list(self.pool.map(self._one, requests))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def probe_server(base_url: str, model: str, timeout_s: float = 10.0) -> None:
    """Fail fast, before a run, when no OpenAI-compatible server answers at `base_url` or it does not
    serve `model` (rather than retrying every request and building a corpus of fallback captions)."""
    import openai

    client = openai.OpenAI(
        base_url=base_url,
        api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY",
        max_retries=0,
        timeout=timeout_s,
    )
    try:
        served = [m.id for m in client.models.list()]
    except openai.OpenAIError as exc:
        raise ReasonError(
            "llm_unreachable",
            f"no OpenAI-compatible server answers at {base_url} ({type(exc).__name__}): start it "
            "(e.g. `vllm serve MODEL`) or choose another --llm",
        ) from None
    if served and model not in served:
        raise ReasonError("llm_model_unknown", f"{base_url} serves {served}, not {model!r}")
