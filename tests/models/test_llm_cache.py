"""The call cache, with a counting backend standing in for an LLM (the real vLLM/openai backends are
cached the same way; their cache use is exercised in the .venv-llm tests)."""

import json
import os
import subprocess
import sys
from dataclasses import replace

from connectors.dataset_card import DatasetCard
from curation.caption_filters import CaptionCandidate
from models.llm import BackendConfig, SamplingOptions, build_backend
from models.llm.base import CaptionRequest, CaptionResult
from models.llm.cache import CachedBackend, CallCache, cache_key
from models.llm.prompt import build_messages

CARD = DatasetCard.default("cxr", ["Cardiomegaly", "Effusion", "No Finding"], modality="X-ray")


class CountingBackend:
    """Answers like an LLM would, deterministically, and records which requests reached it."""

    name = "counting"

    def __init__(self, model="m", sampling=None, fail=()):
        self.model, self.sampling, self.fail = model, sampling or SamplingOptions(), set(fail)
        self.text_model = f"counting:{model}"
        self.calls: list[list[str]] = []

    def cache_identity(self, request):
        return {
            "backend": self.name,
            "model": self.model,
            "messages": build_messages(request.facts),
            "n": request.n,
            "sampling": self.sampling.to_dict(),
        }

    def generate(self, requests):
        self.calls.append([r.key for r in requests])
        out = []
        for r in requests:
            if r.key in self.fail:
                out.append(CaptionResult(r, text_model=self.text_model, error="caption_llm_error: boom"))
            else:
                texts = [json.dumps({"caption": f"{r.key} #{i}"}) for i in range(r.n)]
                out.append(
                    CaptionResult(r, [CaptionCandidate(t, "stop", True) for t in texts], self.text_model)
                )
        return out

    def close(self):
        pass


def requests(*label_sets, n=3):
    return [CaptionRequest(CARD.facts(labels), n=n) for labels in label_sets]


def test_a_rerun_is_answered_from_the_cache(tmp_path):
    inner = CountingBackend()
    backend = CachedBackend(inner, CallCache(str(tmp_path)))
    batch = requests(["Cardiomegaly"], ["No Finding"])
    first = backend.generate(batch)
    second = backend.generate(batch)
    assert inner.calls == [["cxr/Cardiomegaly", "cxr/No Finding"]]
    assert [r.cached for r in first] == [False, False] and [r.cached for r in second] == [True, True]
    assert [r.candidates for r in second] == [r.candidates for r in first]
    assert second[0].text_model == "counting:m" and second[0].request == batch[0]


def test_a_killed_run_resumes_with_only_the_missing_requests(tmp_path):
    CachedBackend(CountingBackend(), CallCache(str(tmp_path))).generate(requests(["Cardiomegaly"]))
    resumed = CountingBackend()
    results = CachedBackend(resumed, CallCache(str(tmp_path))).generate(
        requests(["Effusion"], ["Cardiomegaly"], ["No Finding"])
    )
    assert resumed.calls == [["cxr/Effusion", "cxr/No Finding"]]
    assert [r.request.key for r in results] == ["cxr/Effusion", "cxr/Cardiomegaly", "cxr/No Finding"]
    assert [r.cached for r in results] == [False, True, False]


def test_errors_are_not_cached(tmp_path):
    cache = CallCache(str(tmp_path))
    failing = CountingBackend(fail={"cxr/Effusion"})
    [result] = CachedBackend(failing, cache).generate(requests(["Effusion"]))
    assert result.error
    retry = CountingBackend()
    [again] = CachedBackend(retry, cache).generate(requests(["Effusion"]))
    assert retry.calls == [["cxr/Effusion"]] and again.error is None


def test_the_key_covers_model_prompt_sampling_and_n(tmp_path):
    [request] = requests(["Cardiomegaly"])
    base = CountingBackend()
    keys = {
        cache_key(base.cache_identity(request)),
        cache_key(CountingBackend(model="other").cache_identity(request)),
        cache_key(CountingBackend(sampling=SamplingOptions(temperature=0.2)).cache_identity(request)),
        cache_key(base.cache_identity(replace(request, n=4))),
        cache_key(base.cache_identity(requests(["Effusion"])[0])),
    }
    assert len(keys) == 5
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})


def test_corrupt_entries_are_misses_and_get_rewritten(tmp_path):
    cache = CallCache(str(tmp_path))
    key = "ab" + "0" * 62
    os.makedirs(tmp_path / "ab")
    (tmp_path / "ab" / f"{key}.json").write_text('{"format": 1, "candid')
    assert cache.get(key) is None
    cache.put(key, {"candidates": [], "text_model": "t"})
    assert cache.get(key)["text_model"] == "t"
    assert [p.name for p in (tmp_path / "ab").iterdir()] == [f"{key}.json"]  # no temporary files left


# Several workers hammer the same 20 keys; each checks every read is a whole entry.
WRITER = """
import sys
from models.llm.cache import CallCache
cache = CallCache(sys.argv[1])
for i in range(200):
    key = f"{i % 20:02d}" + "f" * 62
    cache.put(key, {"candidates": [{"text": "x" * 5000, "finish_reason": "stop", "json": False}], "text_model": sys.argv[2]})
    entry = cache.get(key)
    assert entry is not None and entry["candidates"][0]["text"] == "x" * 5000, entry
"""


def test_several_processes_can_share_one_cache(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"w{w}"]) for w in range(3)]
    assert [p.wait(120) for p in procs] == [0, 0, 0]
    files = list(tmp_path.rglob("*"))
    assert not [f for f in files if f.name.startswith(".tmp-")]
    assert len([f for f in files if f.suffix == ".json"]) == 20


def test_build_backend_wraps_in_the_cache_when_asked(tmp_path):
    backend = build_backend(BackendConfig(kind="template", cache_dir=str(tmp_path)))
    assert isinstance(backend, CachedBackend)
    [result] = backend.generate(requests(["Effusion"]))
    assert not result.cached and not list(tmp_path.iterdir())  # template calls are not worth caching
