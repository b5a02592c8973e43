"""The README's first command: `make demo` (scripts/demo.sh) runs every capability once on the bundled
sample data, as a user runs it (the `.venv/bin/medcorpus` console command, one process per step)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_demo_runs_end_to_end(tmp_path):
    if not (ROOT / ".venv" / "bin" / "medcorpus").exists():
        pytest.skip("the demo runs from .venv (make creates it)")
    out = tmp_path / "demo"
    env = {**os.environ, "DEMO_OUT": str(out)}
    result = subprocess.run(
        ["bash", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for corpus in ("pmc", "pmc-legacy", "classification", "corpus", "corpus-tagged", "corpus-balanced"):
        manifest = json.loads((out / corpus / "manifest.json").read_text())
        assert manifest["reconciled"], (corpus, manifest["problems"])
    dedupe = json.loads((out / "corpus" / "manifest.json").read_text())
    assert dedupe["inputs"]["corpora"] == [str(out / "pmc"), str(out / "classification")]
    assert dedupe["options"]["levels"] == ["exact_image", "exact_caption", "phash", "caption_embedding"]
    removed = sum(dedupe["dedupe"]["duplicate"].values())
    assert removed > 0 and result.stdout.count("removed ") == removed
    assert (out / "run" / "export" / "open_clip_config.json").exists()
    assert "classification pair:" in result.stdout
