"""A caption cache on remote storage, mirrored on each machine's local disk.

fsspec's in-process "memory://" filesystem stands in for a gs:// bucket (no network here). The captions
come from the real template backend, given a cache identity as an LLM backend has (the template backend
itself is not cached: recomputing it is cheaper) and counting the requests that reach it.
"""

from __future__ import annotations

import uuid

import fsspec
import pytest

from connectors.dataset_card import DatasetCard
from models.llm.base import CaptionRequest, SamplingOptions
from models.llm.cache import CachedBackend, CallCache
from models.llm.prompt import call_identity
from models.llm.template import TemplateBackend

CARD = DatasetCard.default("cxr", ["Cardiomegaly", "Effusion"], modality="X-ray")


@pytest.fixture
def bucket() -> str:
    url = f"memory://captions-{uuid.uuid4().hex}"
    yield url
    memory = fsspec.filesystem("memory")
    if memory.exists(url):
        memory.rm(url, recursive=True)


class CountedTemplate(TemplateBackend):
    def __init__(self) -> None:
        super().__init__()
        self.generated = 0

    def cache_identity(self, request):
        return call_identity(self.name, "template", request, SamplingOptions(), False)

    def generate(self, requests):
        self.generated += len(requests)
        return super().generate(requests)


def cached(bucket: str) -> CachedBackend:
    return CachedBackend(CountedTemplate(), CallCache(bucket))


def requests() -> list[CaptionRequest]:
    return [CaptionRequest(CARD.facts(labels), n=3) for labels in (["Cardiomegaly"], ["Effusion"])]


def captions(backend) -> list[list[str]]:
    return [[c.text for c in r.candidates] for r in backend.generate(requests())]


def test_entries_are_written_to_the_bucket_and_the_local_mirror(bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDCORPUS_CACHE", str(tmp_path / "worker-a"))
    backend = cached(bucket)
    first = captions(backend)
    assert len(fsspec.filesystem("memory").find(bucket)) == 2
    assert len(list((tmp_path / "worker-a" / "caption-mirror").rglob("*.json"))) == 2
    assert backend.cache.mirror.startswith(str(tmp_path / "worker-a"))
    assert captions(backend) == first
    assert backend.backend.generated == 2


def test_another_worker_reads_each_entry_from_the_bucket_once(bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDCORPUS_CACHE", str(tmp_path / "worker-a"))
    written = captions(cached(bucket))

    monkeypatch.setenv("MEDCORPUS_CACHE", str(tmp_path / "worker-b"))
    reader = cached(bucket)
    results = reader.generate(requests())
    assert all(r.cached for r in results) and [[c.text for c in r.candidates] for r in results] == written
    # The bucket's entries are gone; the second read is answered from worker b's own mirror.
    fsspec.filesystem("memory").rm(bucket, recursive=True)
    assert all(r.cached for r in reader.generate(requests()))
    assert reader.backend.generated == 0


def test_a_local_cache_has_no_mirror(tmp_path):
    assert CallCache(str(tmp_path / "captions")).mirror is None
