"""The `train`, `eval` and `tokenizer train` sub-commands, driven through their own argparse registration."""

import json

import pytest
import torch
from transformers import AutoTokenizer

from models.clip.synthetic_corpus import ShapesSpec, write_shapes_corpus
from pipelines.cli import EXIT_USAGE, main


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def medcorpus(argv: list[str]) -> int:
    return main(argv)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return str(
        write_shapes_corpus(tmp_path_factory.mktemp("corpus"), ShapesSpec(rows={"train": 32, "test": 8}))
    )


def test_demo_train_then_eval_the_checkpoint_and_the_export(tmp_path, corpus, capsys):
    out = tmp_path / "runs" / "demo"
    code = medcorpus(
        [
            "train",
            "--corpus",
            corpus,
            "--preset",
            "tiny",
            "--out",
            str(out),
            "--max-steps",
            "3",
            "--batch-size",
            "8",
            "--workers",
            "0",
            "--no-progress",
            "--eval-batch-size",
            "8",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 3 and summary["eval"]["retrieval"]["n"] == 8

    assert (
        medcorpus(
            [
                "eval",
                "--checkpoint",
                str(out / "checkpoints" / "step-00000003.pt"),
                "--corpus",
                corpus,
                "--workers",
                "0",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "a.json"),
            ]
        )
        == 0
    )
    from_checkpoint = json.loads((tmp_path / "a.json").read_text())
    capsys.readouterr()
    assert (
        medcorpus(
            [
                "eval",
                "--checkpoint",
                str(out / "export"),
                "--corpus",
                corpus,
                "--workers",
                "0",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    from_export = json.loads(capsys.readouterr().out)
    assert from_checkpoint == from_export == summary["eval"]


def test_train_on_a_missing_corpus_exits_with_the_reason(tmp_path, capsys):
    code = medcorpus(
        [
            "train",
            "--corpus",
            str(tmp_path / "absent"),
            "--out",
            str(tmp_path / "run"),
            "--preset",
            "tiny-bpe",
            "--no-progress",
        ]
    )
    assert code == EXIT_USAGE
    assert "corpus_empty" in capsys.readouterr().err


def test_eval_needs_something_to_evaluate_on(tmp_path, capsys):
    assert medcorpus(["eval", "--checkpoint", str(tmp_path)]) == EXIT_USAGE


def test_tokenizer_train_writes_a_folder_train_accepts(tmp_path, corpus, capsys):
    assert (
        medcorpus(
            ["tokenizer", "train", "--corpus", corpus, "--out", str(tmp_path / "tok"), "--vocab-size", "200"]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 32 and report["vocab_size"] <= 200
    code = medcorpus(
        [
            "train",
            "--corpus",
            corpus,
            "--preset",
            "tiny",
            "--out",
            str(tmp_path / "run"),
            "--tokenizer",
            str(tmp_path / "tok"),
            "--max-steps",
            "1",
            "--batch-size",
            "8",
            "--workers",
            "0",
            "--no-progress",
            "--no-eval",
            "--no-export",
        ]
    )
    assert code == 0
    vocab = {
        name: AutoTokenizer.from_pretrained(str(tmp_path / name)).get_vocab() for name in ("tok", "run/model")
    }
    assert vocab["tok"] == vocab["run/model"]
