"""Retrieval and zero-shot metrics: known answers, duplicate captions, unreadable images, empty splits."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.clip.evaluate import (
    EvalSettings,
    evaluate,
    macro_auc,
    read_templates,
    retrieval_metrics,
    zero_shot_classification,
)
from models.clip.factory import create_clip, prepare_model_dir
from models.clip.presets import get_preset
from models.clip.synthetic_corpus import ShapesSpec, shape_image, write_shapes_corpus


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """An untrained tiny-bpe model: the metrics' plumbing, not their values, is under test here."""
    torch.manual_seed(0)
    return create_clip(prepare_model_dir(get_preset("tiny-bpe"), tmp_path_factory.mktemp("model")))


def test_perfectly_aligned_embeddings_score_one():
    features = F.normalize(torch.randn(20, 8), dim=-1)
    metrics = retrieval_metrics(features, features, [f"caption {i}" for i in range(20)])
    assert metrics["n"] == 20
    assert all(metrics[f"{d}_R@{k}"] == 1.0 for d in ("image_to_text", "text_to_image") for k in (1, 5, 10))


def test_recall_at_k_counts_where_the_match_ranks():
    n = 12
    texts = torch.eye(n)
    images = torch.eye(n)
    images[0] = F.normalize(torch.linspace(0.5, 1.0, n), dim=0)  # its text (0) ranks last of 12
    images[1] = F.normalize(
        torch.tensor([0.1, 0.5, 0.1, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]), dim=0
    )  # 3rd
    metrics = retrieval_metrics(images, texts, [f"c{i}" for i in range(n)])
    assert metrics["image_to_text_R@1"] == pytest.approx(10 / 12)
    assert metrics["image_to_text_R@5"] == pytest.approx(11 / 12)
    assert metrics["image_to_text_R@10"] == pytest.approx(11 / 12)


def test_identical_captions_are_interchangeable_matches():
    texts = torch.eye(3)
    images = torch.eye(3)[[1, 0, 2]]  # images 0 and 1 point at each other's text
    assert retrieval_metrics(images, texts, ["x", "y", "z"])["image_to_text_R@1"] == pytest.approx(1 / 3)
    assert retrieval_metrics(images, texts, ["same", "Same ", "z"])["image_to_text_R@1"] == 1.0


def test_macro_auc_averages_classes_with_both_outcomes():
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=bool)
    scores = np.array([[0.9, 0.1, 0.2], [0.2, 0.8, 0.1], [0.4, 0.3, 0.3], [0.5, 0.2, 0.9]])
    # class 0: positives 0.9, 0.4 vs negatives 0.2, 0.5 -> 3/4; class 1: 0.8, 0.3 vs 0.1, 0.2 -> 1; class 2 skipped
    assert macro_auc(targets, scores) == pytest.approx((0.75 + 1.0) / 2)
    assert macro_auc(np.zeros((2, 2), dtype=bool), np.ones((2, 2))) is None


def test_zero_shot_reads_an_image_folder_and_counts_unreadable_images(tmp_path, clip):
    rng = np.random.default_rng(0)
    for label, colour in (("red_circle", "red"), ("blue_circle", "blue")):
        (tmp_path / label).mkdir()
        for n in range(3):
            (tmp_path / label / f"{n}.png").write_bytes(shape_image(colour, "circle", (32, 32), rng, "PNG"))
    (tmp_path / "red_circle" / "broken.png").write_bytes(b"\x89PNG not really")
    result = zero_shot_classification(clip, str(tmp_path), EvalSettings(batch_size=4, workers=0), split=None)
    assert result["classes"] == ["blue_circle", "red_circle"]
    assert result["n"] == 6 and result["errors"] == {"image_decode": 1}
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["macro_auc"] <= 1.0


def test_evaluate_on_a_corpus_split_without_rows_reports_zero(tmp_path, clip):
    corpus = write_shapes_corpus(tmp_path, ShapesSpec(rows={"train": 8, "test": 6}))
    results = evaluate(clip, EvalSettings(batch_size=4, workers=0), corpus=str(corpus), split="validation")
    assert results["retrieval"]["n"] == 0
    results = evaluate(clip, EvalSettings(batch_size=4, workers=2), corpus=str(corpus), split="test")
    assert results["retrieval"]["n"] == 6 and 0 <= results["retrieval"]["text_to_image_R@1"] <= 1


def test_templates_file_needs_a_placeholder_per_line(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("a photo of {}.\n\nan x-ray showing {}\n")
    assert read_templates(good) == ("a photo of {}.", "an x-ray showing {}")
    bad = tmp_path / "bad.txt"
    bad.write_text("no placeholder\n")
    with pytest.raises(ValueError, match="templates_invalid"):
        read_templates(bad)


def test_zero_shot_evaluates_only_the_samples_ingest_held_out(clip):
    """The sample dataset names no splits: its test samples are the ones ingest assigned to test."""
    from pathlib import Path

    from connectors.classification import ClassificationSample, open_classification_dataset, split_for
    from connectors.splits import SplitRatios

    manifest = str(Path(__file__).resolve().parents[2] / "sample_data" / "classification" / "manifest.csv")
    ratios = SplitRatios.parse("50/25/25")
    samples = [s for s in open_classification_dataset(manifest) if isinstance(s, ClassificationSample)]
    held_out = sum(split_for(s, ratios) == "test" for s in samples)
    assert 0 < held_out < len(samples)
    settings = EvalSettings(batch_size=4, workers=0)
    result = zero_shot_classification(clip, manifest, settings, split="test", ratios=ratios)
    assert result["n"] == held_out
    assert result["split"] == "test, assigned as ingest does with --splits 50/25/25"
    assert zero_shot_classification(clip, manifest, settings, split=None)["n"] == len(samples)
