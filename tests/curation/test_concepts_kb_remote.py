"""A concept KB on remote storage: checked where it is, copied once per machine, tagged with.

fsspec's in-process "memory://" filesystem stands in for gs:// / s3:// (no network here). The bundled
sample KB is uploaded to it; `MEDCORPUS_CACHE` points at a fresh folder so the copy is observable.
"""

from __future__ import annotations

import uuid

import fsspec
import pytest

from curation.concepts import ConceptTagger, read_identity
from curation.concepts.errors import ConceptKbError
from curation.concepts.kb import META_FILE, load_kb


@pytest.fixture
def remote_kb(sample_kb_dir) -> str:
    url = f"memory://kb-{uuid.uuid4().hex}/umls-sample"
    memory = fsspec.filesystem("memory")
    memory.put(str(sample_kb_dir), url, recursive=True)
    yield url
    memory.rm(url.rsplit("/", 1)[0], recursive=True)


def test_the_identity_is_read_without_copying(remote_kb, sample_kb_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDCORPUS_CACHE", str(tmp_path / "cache"))
    assert read_identity(remote_kb) == read_identity(sample_kb_dir)
    assert not (tmp_path / "cache").exists()


def test_the_kb_is_copied_once_and_reused(remote_kb, sample_kb_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDCORPUS_CACHE", str(tmp_path / "cache"))
    tagger = ConceptTagger(remote_kb, model=None)
    [concepts] = tagger.tag_batch(["CT scan of the liver showing a hepatic lesion."])
    assert {"C0023884", "C0040405"} <= {c.cui for c in concepts}  # Liver; X-Ray Computed Tomography

    copies = list((tmp_path / "cache" / "remote").iterdir())
    assert len(copies) == 1
    meta = copies[0] / META_FILE
    inode = meta.stat().st_ino
    second = load_kb(remote_kb)  # a second DoFn instance on the same worker
    assert second.identity == read_identity(sample_kb_dir)
    assert list((tmp_path / "cache" / "remote").iterdir()) == copies
    assert meta.stat().st_ino == inode


def test_an_incomplete_remote_kb_is_refused_before_copying(remote_kb, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDCORPUS_CACHE", str(tmp_path / "cache"))
    fsspec.filesystem("memory").rm(f"{remote_kb}/{META_FILE}")
    with pytest.raises(ConceptKbError) as err:
        load_kb(remote_kb)
    assert err.value.reason == "kb_incomplete" and META_FILE in str(err.value)
    assert not (tmp_path / "cache").exists()
    with pytest.raises(ConceptKbError) as err:
        read_identity(remote_kb + "-missing")
    assert err.value.reason == "kb_missing"
