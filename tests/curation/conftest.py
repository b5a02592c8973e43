"""Shared fixtures of the curation tests: the bundled concept KB, built once per session."""

from __future__ import annotations

import time

import pytest


@pytest.fixture(scope="session")
def sample_kb_dir(tmp_path_factory):
    """The bundled sample KB, built from its RRF files into a session temp dir (about 2 s)."""
    from curation.concepts import default_kb_dir

    started = time.monotonic()
    kb_dir = default_kb_dir(cache_dir=tmp_path_factory.mktemp("medcorpus-cache"))
    print(f"bundled KB built in {time.monotonic() - started:.1f}s")
    return kb_dir


@pytest.fixture(scope="session")
def tagger(sample_kb_dir):
    """A ConceptTagger with default settings and no model (blank tokenizer + n-grams)."""
    from curation.concepts import ConceptTagger

    return ConceptTagger(sample_kb_dir, model=None)
