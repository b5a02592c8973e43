"""The README's first command: `make demo` (scripts/demo.sh) is one `medcorpus build` of
sample_data/demo.yaml, run as a user runs it (the `.venv/bin/medcorpus` console command). A second run
skips every step; a changed option reruns that step and what reads it; a failing step leaves the
outputs before it valid."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPORA = ("pmc", "pmc-legacy", "classification", "corpus", "corpus-tagged", "corpus-balanced")
STEPS = (*CORPORA, "run", "eval")


def run(argv: list[str], out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEMO_OUT": str(out)}
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)


def build(yaml_text: str, out: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """`medcorpus build` of a changed copy of the demo file (its paths are relative to the repository)."""
    path = tmp_path / "changed.yaml"
    path.write_text(yaml_text)
    return run([str(ROOT / ".venv" / "bin" / "medcorpus"), "build", str(path), "--out", str(out)], out)


def written(out: Path) -> dict[str, int]:
    """When each step last wrote its output (a corpus's manifest, the run's summary, the eval file)."""
    files = {name: out / name / "manifest.json" for name in CORPORA}
    files |= {"run": out / "run" / "summary.json", "eval": out / "eval.json"}
    return {name: path.stat().st_mtime_ns for name, path in files.items()}


def rewritten(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {name for name in before if before[name] != after[name]}


@pytest.mark.slow
def test_the_demo_runs_end_to_end_and_rebuilds_only_what_changed(tmp_path):
    if not (ROOT / ".venv" / "bin" / "medcorpus").exists():
        pytest.skip("the demo runs from .venv (make creates it)")
    out = tmp_path / "demo"
    result = run(["bash", "scripts/demo.sh"], out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "build sample_data/demo.yaml: 8 step(s) ran, 0 up to date" in result.stderr
    for corpus in CORPORA:
        manifest = json.loads((out / corpus / "manifest.json").read_text())
        assert manifest["reconciled"], (corpus, manifest["problems"])
    dedupe = json.loads((out / "corpus" / "manifest.json").read_text())
    assert dedupe["inputs"]["corpora"] == [str(out / "pmc"), str(out / "classification")]
    assert dedupe["options"]["levels"] == ["exact_image", "exact_caption", "phash", "caption_embedding"]
    removed = sum(dedupe["dedupe"]["duplicate"].values())
    assert removed > 0 and result.stdout.count("removed ") == removed
    assert (out / "run" / "export" / "open_clip_config.json").exists()
    assert json.loads((out / "eval.json").read_text())["retrieval"]["n"] > 0
    assert "classification pair:" in result.stdout
    first = written(out)

    # the same demo again: every step is up to date, and says so
    again = run(["bash", "scripts/demo.sh"], out)
    assert again.returncode == 0, again.stderr[-3000:]
    for index, name in enumerate(STEPS, 1):
        assert f"[{index}/8] {name}: skipped (up to date" in again.stderr
    assert "0 step(s) ran, 8 up to date" in again.stderr
    assert written(out) == first

    # one option changed: that step and the ones that read it run, nothing else
    demo = (ROOT / "sample_data" / "demo.yaml").read_text()
    assert "max-per-concept: 3" in demo and "max-steps: 20" in demo
    changed = build(demo.replace("max-per-concept: 3", "max-per-concept: 2"), out, tmp_path)
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert "options changed: --max-per-concept 3 -> 2" in changed.stderr
    second = written(out)
    assert rewritten(first, second) == {"corpus-balanced", "eval"}
    retrained = build(demo.replace("max-steps: 20", "max-steps: 10"), out, tmp_path)
    assert retrained.returncode == 0, retrained.stderr[-3000:]
    third = written(out)
    assert rewritten(second, third) == {"corpus-balanced", "run", "eval"}  # balance: back to 3
    assert json.loads((out / "run" / "summary.json").read_text())["step"] == 10

    # a failing step stops the build; what the steps before it wrote (and its own old output) stays valid
    failing = build(
        demo.replace("name: corpus-tagged\n", "name: corpus-tagged\n    kb: missing/kb\n"), out, tmp_path
    )
    assert failing.returncode == 2
    assert "[build_step_failed] step corpus-tagged failed" in failing.stderr
    assert written(out) == third
    for corpus in CORPORA:
        assert json.loads((out / corpus / "manifest.json").read_text())["reconciled"], corpus
