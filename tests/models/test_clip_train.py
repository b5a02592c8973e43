"""The trainer on CPU with the tiny preset: learning, exact resume, end-of-run evaluation and artefacts."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models.clip.checkpoint import load_checkpoint
from models.clip.corpus_index import CorpusIndex, iter_captions
from models.clip.synthetic_corpus import COLOURS, SHAPES, ShapesSpec, shape_image, write_shapes_corpus
from models.clip.tokenizer import train_wordpiece
from models.clip.train import TrainConfig, TrainError, train


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return str(
        write_shapes_corpus(tmp_path_factory.mktemp("corpus"), ShapesSpec(rows={"train": 96, "test": 24}))
    )


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory, corpus):
    """One WordPiece tokenizer for runs that are compared (HF's trainer breaks frequency ties at random)."""
    return str(
        train_wordpiece(iter_captions(CorpusIndex.build(corpus)), tmp_path_factory.mktemp("tok"), 4096)
    )


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory):
    """A classification image folder root/<colour>_<shape>/<n>.png, 3 images per class."""
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(7)
    for colour in COLOURS:
        for shape in SHAPES:
            (root / f"{colour}_{shape}").mkdir()
            for n in range(3):
                (root / f"{colour}_{shape}" / f"{n}.png").write_bytes(
                    shape_image(colour, shape, (32, 32), rng, "PNG")
                )
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus, shapes_folder, tokenizer):
    """40 steps of the tiny preset; images and captions match trivially (coloured shapes)."""
    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("run")
    templates = out.parent / "templates.txt"
    templates.write_text("a {}\n")
    cfg = TrainConfig(
        corpus=corpus,
        out=str(out),
        preset="tiny",
        tokenizer=tokenizer,
        batch_size=16,
        max_steps=40,
        lr=2e-3,
        workers=2,
        log_every=5,
        save_every=20,
        progress=False,
        eval_batch_size=24,
        zeroshot=str(shapes_folder),
        zeroshot_templates=str(templates),
        zeroshot_splits=None,  # a dataset of its own, not part of the training corpus
    )
    return out, train(cfg)


def losses(run_dir):
    return {
        r["step"]: r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    }


def test_loss_decreases(trained):
    run_dir, summary = trained
    curve = losses(run_dir)
    assert sorted(curve) == list(range(1, 41))
    first, last = [curve[s] for s in range(1, 6)], [curve[s] for s in range(36, 41)]
    assert sum(last) / 5 < sum(first) / 5 - 0.3
    assert summary["step"] == 40 and not summary["stopped_early"]


def test_evaluation_at_the_end_beats_chance_on_matched_pairs(trained):
    run_dir, summary = trained
    retrieval = json.loads((run_dir / "eval.json").read_text())["retrieval"]
    assert retrieval == summary["eval"]["retrieval"]
    assert retrieval["n"] == 24 and retrieval["split"] == "test"
    for direction in ("image_to_text", "text_to_image"):
        r1, r5, r10 = (retrieval[f"{direction}_R@{k}"] for k in (1, 5, 10))
        assert 0 <= r1 <= r5 <= r10 <= 1
        # 24 test pairs in 12 caption groups: a random model finds a match in its top 5 38% of the time
        assert r5 > 0.6


def test_zero_shot_classification_at_the_end_beats_chance(trained):
    _, summary = trained
    zeroshot = summary["eval"]["zeroshot"]
    assert zeroshot["n"] == 36 and len(zeroshot["classes"]) == 12 and zeroshot["errors"] == {}
    assert zeroshot["accuracy"] > 2 / 12  # chance is 1/12
    assert zeroshot["macro_auc"] > 0.65  # chance is 0.5


def test_run_folder_holds_checkpoints_logs_and_export(trained):
    run_dir, summary = trained
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step-00000040.pt"
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "step-00000040.pt")
    assert {"state_dict", "optimizer", "scheduler", "scaler", "rng", "data"} <= checkpoint.keys()
    assert checkpoint["data"][0]["epoch"] == 40 // summary["steps_per_epoch"]
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "export" / "open_clip_model.safetensors").is_file()
    assert json.loads((run_dir / "summary.json").read_text())["final_loss"] == pytest.approx(
        losses(run_dir)[40]
    )
    assert (
        summary["throughput"]["samples_per_s"] > 0 and 0 <= summary["throughput"]["data_wait_fraction"] <= 1
    )


def test_resume_reproduces_the_uninterrupted_loss_curve(tmp_path, corpus, tokenizer):
    # 96 rows, 2 workers, batch 8 -> 12 steps per epoch; stop mid-epoch at an odd step (the other worker is
    # due next), resume across the epoch boundary
    def config(out, **kw):
        return TrainConfig(
            corpus=corpus,
            out=str(out),
            preset="tiny",
            tokenizer=tokenizer,
            batch_size=8,
            max_steps=15,
            lr=2e-3,
            workers=2,
            save_every=100,
            log_every=4,
            progress=False,
            eval_at_end=False,
            export_at_end=False,
            **kw,
        )

    whole = train(config(tmp_path / "whole"))
    stopped = train(config(tmp_path / "parts", stop_at_step=5))
    assert stopped["stopped_early"] and stopped["step"] == 5
    assert (tmp_path / "parts" / "checkpoints" / "latest").read_text().strip() == "step-00000005.pt"
    resumed = train(config(tmp_path / "parts", resume="latest"))
    assert resumed["resumed_from"].endswith("step-00000005.pt") and resumed["steps_this_run"] == 10
    expected, got = losses(tmp_path / "whole"), losses(tmp_path / "parts")
    assert sorted(got) == list(range(1, 16))
    for step in range(1, 16):
        assert math.isclose(got[step], expected[step], rel_tol=1e-5, abs_tol=1e-6), step
    assert resumed["final_loss"] == pytest.approx(whole["final_loss"], rel=1e-5)


def test_gradient_accumulation_trains_on_the_whole_accumulated_batch(tmp_path, corpus):
    summary = train(
        TrainConfig(
            corpus=corpus,
            out=str(tmp_path),
            preset="tiny-bpe",
            batch_size=4,
            accum_steps=3,
            max_steps=3,
            workers=0,
            progress=False,
            eval_at_end=False,
            export_at_end=False,
        )
    )
    assert summary["global_batch"] == 12 and summary["steps_per_epoch"] == 96 // 12
    curve = losses(tmp_path)
    # the contrastive loss over 12 samples starts near ln(12), not ln(4)
    assert abs(curve[1] - math.log(12)) < 0.5


def test_a_second_fresh_run_into_the_same_folder_is_refused(tmp_path, corpus):
    cfg = TrainConfig(
        corpus=corpus,
        out=str(tmp_path),
        preset="tiny-bpe",
        batch_size=32,
        max_steps=1,
        workers=0,
        progress=False,
        eval_at_end=False,
        export_at_end=False,
    )
    train(cfg)
    with pytest.raises(TrainError) as e:
        train(cfg)
    assert e.value.reason == "run_exists"


def test_a_batch_larger_than_the_split_is_a_clear_error(tmp_path, corpus):
    cfg = TrainConfig(
        corpus=corpus, out=str(tmp_path), preset="tiny-bpe", batch_size=64, workers=2, progress=False
    )
    with pytest.raises(TrainError) as e:
        train(cfg)
    assert e.value.reason == "batch_too_large"


def test_gradient_checkpointing_trains_like_the_plain_model(tmp_path, corpus, tokenizer):
    curves = {}
    for checkpointing in (False, True):
        out = tmp_path / str(checkpointing)
        train(
            TrainConfig(
                corpus=corpus,
                out=str(out),
                preset="tiny",
                tokenizer=tokenizer,
                batch_size=8,
                max_steps=3,
                workers=0,
                grad_checkpointing=checkpointing,
                log_every=1,
                progress=False,
                eval_at_end=False,
                export_at_end=False,
            )
        )
        curves[checkpointing] = [losses(out)[s] for s in (1, 2, 3)]
    assert curves[True] == pytest.approx(curves[False], rel=1e-2)


@pytest.mark.slow
def test_torch_compile_trains_like_eager(tmp_path, corpus):
    curves = {}
    for compiled in (False, True):
        out = tmp_path / str(compiled)
        train(
            TrainConfig(
                corpus=corpus,
                out=str(out),
                preset="tiny-bpe",
                batch_size=8,
                max_steps=3,
                workers=0,
                compile=compiled,
                log_every=1,
                progress=False,
                eval_at_end=False,
                export_at_end=True,
            )
        )
        curves[compiled] = [losses(out)[s] for s in (1, 2, 3)]
        assert (out / "export" / "open_clip_model.safetensors").is_file()
    assert curves[True] == pytest.approx(curves[False], rel=1e-4)


def small(corpus, out, **kw) -> TrainConfig:
    settings = {
        "preset": "tiny",
        "batch_size": 8,
        "max_steps": 4,
        "workers": 1,
        "save_every": 2,
        "log_every": 1,
    }
    settings |= kw
    return TrainConfig(
        corpus=corpus, out=str(out), progress=False, eval_at_end=False, export_at_end=False, **settings
    )


def test_resume_latest_without_a_checkpoint_is_an_error_and_auto_starts(tmp_path, corpus, tokenizer):
    with pytest.raises(ValueError, match="holds no checkpoint") as info:
        train(small(corpus, tmp_path / "run", tokenizer=tokenizer, resume="latest"))
    assert info.value.reason == "checkpoint_missing"
    assert train(small(corpus, tmp_path / "run", tokenizer=tokenizer, resume="auto"))["resumed_from"] is None


@pytest.mark.parametrize("change", [{"batch_size": 4}, {"preset": "tiny-bpe"}, {"seed": 7}])
def test_resuming_with_other_settings_is_refused(tmp_path, corpus, tokenizer, change):
    train(small(corpus, tmp_path / "run", tokenizer=tokenizer, stop_at_step=2))
    settings = {"tokenizer": tokenizer, "resume": "latest", **change}
    if change.get("preset") == "tiny-bpe":
        settings.pop("tokenizer")
    with pytest.raises(ValueError, match="cannot continue with other settings") as info:
        train(small(corpus, tmp_path / "run", **settings))
    assert info.value.reason == "resume_config_mismatch"


def test_the_same_seed_reproduces_without_a_tokenizer(tmp_path_factory):
    """The auto-trained WordPiece tokenizer is trained once and kept beside the corpus."""
    corpus = str(write_shapes_corpus(tmp_path_factory.mktemp("own"), ShapesSpec(rows={"train": 32})))
    first = tmp_path_factory.mktemp("first")
    second = tmp_path_factory.mktemp("second")
    train(small(corpus, first / "run"))
    train(small(corpus, second / "run"))
    assert len(list((Path(corpus) / "tokenizers").glob("wordpiece-*/tokenizer.json"))) == 1
    assert losses(first / "run") == losses(second / "run")
