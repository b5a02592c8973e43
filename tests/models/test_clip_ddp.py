"""Real two-process DDP training on CPU (gloo) under torchrun, including an exact stop-and-resume."""

import json
import os
import subprocess
import sys

import pytest

from models.clip.checkpoint import load_checkpoint
from models.clip.synthetic_corpus import ShapesSpec, write_shapes_corpus

pytestmark = pytest.mark.slow


def torchrun(corpus, out, *extra):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "pipelines.commands.train",
        "--corpus",
        str(corpus),
        "--out",
        str(out),
        "--preset",
        "tiny-bpe",
        "--batch-size",
        "4",
        "--max-steps",
        "6",
        "--workers",
        "1",
        "--device",
        "cpu",
        "--no-progress",
        "--log-every",
        "2",
        "--eval-batch-size",
        "8",
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout[done.stdout.index("{") :])


def losses(run_dir):
    return {
        r["step"]: r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    }


def test_two_process_ddp_trains_and_resumes_exactly(tmp_path):
    corpus = write_shapes_corpus(tmp_path / "corpus", ShapesSpec(rows={"train": 40, "test": 8}))
    whole = torchrun(corpus, tmp_path / "whole")
    assert whole["world_size"] == 2 and whole["global_batch"] == 8
    assert whole["steps_per_epoch"] == 5  # 40 rows over 2 ranks x 1 worker, batches of 4
    assert whole["eval"]["retrieval"]["n"] == 8

    stopped = torchrun(corpus, tmp_path / "parts", "--stop-at-step", "3")
    assert stopped["stopped_early"]
    checkpoint = load_checkpoint(tmp_path / "parts" / "checkpoints" / "step-00000003.pt")
    assert checkpoint["world_size"] == 2 and len(checkpoint["data"]) == len(checkpoint["rng"]) == 2
    assert [d["positions"] for d in checkpoint["data"]] == [[12], [12]]
    torchrun(corpus, tmp_path / "parts", "--resume", "latest")
    expected, got = losses(tmp_path / "whole"), losses(tmp_path / "parts")
    assert sorted(got) == list(range(1, 7))
    assert got == pytest.approx(expected, rel=1e-5)
