"""Test-session environment: every cache in a private temporary folder, and no hub access.

Set before any test module imports `datasets` (which reads its cache location at import time), so tests
never read or write the user's ~/.cache and never depend on each other's leftovers.
"""

from __future__ import annotations

import os
import tempfile

_CACHE = tempfile.mkdtemp(prefix="medcorpus-test-cache-")
os.environ["HF_HOME"] = os.path.join(_CACHE, "huggingface")
os.environ["HF_DATASETS_CACHE"] = os.path.join(_CACHE, "huggingface", "datasets")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["MEDCORPUS_CACHE"] = os.path.join(_CACHE, "medcorpus")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_open_clip_export(tmp_path_factory):
    """A real open_clip model folder (the `tiny-bpe` preset exported by medcorpus) with random weights:
    no trained image model can be downloaded here, so tests check the plumbing, not embedding quality."""
    import torch

    from models.clip.export import export_open_clip
    from models.clip.factory import create_clip, prepare_model_dir
    from models.clip.presets import get_preset

    root = tmp_path_factory.mktemp("tiny-clip")
    torch.manual_seed(0)
    clip = create_clip(prepare_model_dir(get_preset("tiny-bpe"), root / "model"))
    export_open_clip(clip, root / "export", name="tiny-dedupe")
    return root / "export"


@pytest.fixture(scope="session")
def sample_classification_corpus(tmp_path_factory):
    """The bundled classification dataset ingested with template captions (read-only for tests)."""
    from pathlib import Path

    from pipelines.cli import main

    sample = Path(__file__).resolve().parents[1] / "sample_data" / "classification"
    out = tmp_path_factory.mktemp("sample-classification") / "corpus"
    args = ["--dataset", str(sample / "manifest.csv"), "--card", str(sample / "card.yaml")]
    assert main(["ingest", "classification", *args, "--out", str(out), "--cache-dir", "none"]) == 0
    return out
