"""Caption backends behind one interface (see base.py): `template` (no model), `vllm` (in-process
engine, the GPU production path) and `openai` (any OpenAI-compatible server), plus an on-disk call
cache. Build one from options with :func:`build_backend`; the heavy packages are imported only by the
backend that needs them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.llm.base import LLM_ERROR, CaptionBackend, CaptionRequest, CaptionResult, SamplingOptions

BACKENDS = ("template", "vllm", "openai")

__all__ = [
    "BACKENDS",
    "LLM_ERROR",
    "BackendConfig",
    "CaptionBackend",
    "CaptionRequest",
    "CaptionResult",
    "SamplingOptions",
    "build_backend",
]


@dataclass
class BackendConfig:
    """Everything needed to build a backend: plain data, so a Beam DoFn can carry it to its workers
    and build the backend once in `setup`."""

    kind: str = "template"  # one of BACKENDS
    model: str | None = None  # vllm: a local HF folder or hub id; openai: the served model name
    base_url: str | None = None  # openai: e.g. http://127.0.0.1:8000/v1
    api_key: str | None = None  # openai: default $OPENAI_API_KEY, else "EMPTY" (vllm serve takes any)
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    json_output: bool = True  # structured {"caption": ...} output
    cache_dir: str | None = None  # any fsspec URL; None: no cache
    # openai
    concurrency: int = 32
    max_retries: int = 5
    timeout_s: float = 120.0
    # vllm
    max_model_len: int | None = 2048
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    enforce_eager: bool = False
    in_process: bool = False
    engine_kwargs: dict[str, Any] = field(default_factory=dict)


def build_backend(config: BackendConfig) -> CaptionBackend:
    """The backend `config` describes, wrapped in the call cache when `cache_dir` is set.

    Raises ValueError for an unknown kind or missing options, ImportError when the backend's package
    is not installed.
    """
    if config.kind == "template":
        from models.llm.template import TemplateBackend

        backend: CaptionBackend = TemplateBackend()
    elif config.kind == "vllm":
        if not config.model:
            raise ValueError("the vllm backend needs a model (a local HF folder or hub id)")
        from models.llm.vllm_backend import VLLMBackend

        backend = VLLMBackend(
            config.model,
            sampling=config.sampling,
            json_output=config.json_output,
            max_model_len=config.max_model_len,
            dtype=config.dtype,
            tensor_parallel_size=config.tensor_parallel_size,
            gpu_memory_utilization=config.gpu_memory_utilization,
            enforce_eager=config.enforce_eager,
            in_process=config.in_process,
            engine_kwargs=config.engine_kwargs,
        )
    elif config.kind == "openai":
        if not config.model or not config.base_url:
            raise ValueError("the openai backend needs base_url and model")
        from models.llm.openai_backend import OpenAIBackend

        backend = OpenAIBackend(
            config.base_url,
            config.model,
            api_key=config.api_key,
            sampling=config.sampling,
            json_output=config.json_output,
            concurrency=config.concurrency,
            max_retries=config.max_retries,
            timeout_s=config.timeout_s,
        )
    else:
        raise ValueError(f"unknown caption backend {config.kind!r}; choose one of {BACKENDS}")
    if config.cache_dir:
        from models.llm.cache import CachedBackend, CallCache

        return CachedBackend(backend, CallCache(config.cache_dir))
    return backend
