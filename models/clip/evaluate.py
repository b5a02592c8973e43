"""Evaluation: image-text retrieval on a corpus split, zero-shot classification on a classification dataset.

Retrieval reports Recall@K both ways. Captions that are identical after whitespace/case folding cannot be
told apart by any model, so a retrieved item counts as correct when its caption equals the query's.
Zero-shot classification reads datasets with the classification pipeline's readers
(`connectors.classification`), builds one text embedding per class from prompt templates, and reports
top-1 accuracy and the macro-average of the per-class one-vs-rest ROC AUCs.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from connectors.splits import SplitRatios
from models.clip.corpus_index import CorpusIndex, RowFilter
from models.clip.factory import ClipModel
from models.clip.stream import PairStream, SampleError, StreamOptions, decode_image
from schemas.errors import ReasonError

log = logging.getLogger(__name__)

DEFAULT_TEMPLATES = ("{}.", "a medical image of {}.", "this is an image of {}.", "an example of {}.")


@dataclass(frozen=True)
class EvalSettings:
    batch_size: int = 64
    workers: int = 2
    device: str = "cpu"
    bf16: bool = False


def _autocast(settings: EvalSettings):
    if settings.bf16:
        return torch.autocast(device_type=torch.device(settings.device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------------------------- retrieval


@torch.no_grad()
def encode_corpus(
    clip: ClipModel, corpus: str | Sequence[str], row_filter: RowFilter, settings: EvalSettings
) -> tuple[torch.Tensor, torch.Tensor, list[str], dict[str, int]]:
    """Normalised image and text embeddings of every kept row, with the captions and any sample errors."""
    from torch.utils.data import DataLoader

    index = CorpusIndex.build(corpus, row_filter)
    stream = PairStream(
        index,
        clip.val_transform,
        clip.tokenizer,
        StreamOptions(
            batch_size=settings.batch_size,
            shuffle=False,
            drop_last=False,
            sample_captions=False,
            with_meta=True,
        ),
        slots_per_rank=max(1, settings.workers),
        image_size=clip.image_size,
    )
    loader = DataLoader(stream, batch_size=None, num_workers=settings.workers)
    model = clip.model.eval()
    images, texts, captions, errors = [], [], [], Counter()
    for batch in loader:
        with _autocast(settings):
            images.append(
                model.encode_image(batch["image"].to(settings.device), normalize=True).float().cpu()
            )
            texts.append(model.encode_text(batch["text"].to(settings.device), normalize=True).float().cpu())
        captions.extend(batch["captions"])
        errors.update(batch["errors"])
    if not images:
        dim = int(clip.config["model_cfg"]["embed_dim"])
        return torch.empty(0, dim), torch.empty(0, dim), [], dict(errors)
    return torch.cat(images), torch.cat(texts), captions, dict(errors)


def retrieval_metrics(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    captions: Sequence[str],
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Recall@K image->text and text->image for row-aligned, normalised embeddings."""
    n = len(captions)
    if n == 0:
        return {"n": 0}
    groups = torch.as_tensor(_caption_groups(captions))
    out: dict[str, float] = {"n": n}
    for direction, queries, keys in (
        ("image_to_text", image_features, text_features),
        ("text_to_image", text_features, image_features),
    ):
        better = torch.empty(n, dtype=torch.long)
        for lo in range(0, n, 1024):
            scores = queries[lo : lo + 1024] @ keys.T
            same = groups[lo : lo + 1024, None] == groups[None, :]
            best_correct = scores.masked_fill(~same, float("-inf")).max(dim=1, keepdim=True).values
            better[lo : lo + 1024] = ((scores > best_correct) & ~same).sum(dim=1)
        for k in ks:
            out[f"{direction}_R@{k}"] = float((better < k).float().mean())
    return out


def _caption_groups(captions: Sequence[str]) -> np.ndarray:
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(" ".join(c.lower().split()), len(ids)) for c in captions], dtype=np.int64)


# ---------------------------------------------------------------------------------------- zero-shot


class _ClassificationImages(torch.utils.data.Dataset):
    def __init__(self, samples: list[Any], transform: Any, image_size: int) -> None:
        self.samples = samples
        self.transform = transform
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            return i, self.transform(load_classification_image(self.samples[i], self.image_size)), None
        except SampleError as e:
            log.warning("zero-shot: skipping %s (%s): %s", self.samples[i].sample_id, e.reason, e)
            return i, None, e.reason


def load_classification_image(sample: Any, image_size: int):
    """A classification sample's image as RGB PIL, through the classification pipeline's readers."""
    from connectors.classification import read_image_bytes
    from connectors.images import ImageError
    from connectors.medical_image import detect_kind, load_medical_image

    try:
        data = read_image_bytes(sample)
        if detect_kind(data, sample.image_name) != "raster":
            data = load_medical_image(data, sample.image_name)[0].image.data  # DICOM / volume: first image
    except ImageError as e:
        raise SampleError(e.reason, str(e)) from e
    return decode_image(data, image_size, max_pixels=10**9)


def _collate(items: list[tuple[int, torch.Tensor | None, str | None]]) -> dict[str, Any]:
    good = [(i, t) for i, t, _ in items if t is not None]
    return {
        "index": [i for i, _ in good],
        "image": torch.stack([t for _, t in good]) if good else None,
        "errors": Counter(r for _, t, r in items if t is None),
    }


@torch.no_grad()
def zero_shot_classification(
    clip: ClipModel,
    dataset: str,
    settings: EvalSettings,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    split: str | None = "test",
    max_samples: int | None = None,
    ratios: SplitRatios | None = None,
) -> dict[str, Any]:
    """Accuracy and macro-AUC of zero-shot classification on `dataset` (a folder, manifest or HF dataset).

    `split`: evaluate only on the samples of this split (None: all samples). Where the dataset names
    splits they are used; otherwise each sample's split is assigned exactly as `ingest classification`
    assigns it (a hash of the patient, study or sample, with `ratios`: the `--splits` the training corpus
    was ingested with), so that no training image is evaluated on. `ratios=None` says the dataset is not
    part of the training corpus: then every sample is evaluated on.
    """
    from torch.utils.data import DataLoader

    from connectors.classification import ClassificationSample, open_classification_dataset, split_for

    items = list(open_classification_dataset(dataset))
    samples = [s for s in items if isinstance(s, ClassificationSample)]
    errors = Counter(e.reason for e in items if not isinstance(e, ClassificationSample))
    split_from = "all samples (the dataset is not part of the training corpus)"
    if split is not None and any(s.split for s in samples):
        samples = [s for s in samples if s.split == split]
        split_from = f"{split}, as the dataset names it"
    elif split is not None and ratios is not None:
        samples = [s for s in samples if split_for(s, ratios) == split]
        split_from = f"{split}, assigned as ingest does with --splits {ratios.as_text()}"
    if max_samples is not None:
        samples = samples[:max_samples]
    classes = sorted({label for s in samples for label in s.labels})
    if len(classes) < 2 or not samples:
        return {
            "n": len(samples),
            "split": split_from,
            "classes": classes,
            "errors": dict(errors),
            "accuracy": None,
            "macro_auc": None,
        }
    model = clip.model.eval()
    class_features = _class_embeddings(clip, classes, templates, settings)
    loader = DataLoader(
        _ClassificationImages(samples, clip.val_transform, clip.image_size),
        batch_size=settings.batch_size,
        num_workers=settings.workers,
        collate_fn=_collate,
    )
    kept, logits = [], []
    for batch in loader:
        errors.update(batch["errors"])
        if batch["image"] is None:
            continue
        with _autocast(settings):
            features = model.encode_image(batch["image"].to(settings.device), normalize=True).float()
        logits.append((features @ class_features.T).cpu())
        kept.extend(batch["index"])
    if not kept:
        return {
            "n": 0,
            "split": split_from,
            "classes": classes,
            "errors": dict(errors),
            "accuracy": None,
            "macro_auc": None,
        }
    scores = torch.cat(logits).softmax(dim=1).numpy()
    targets = np.zeros((len(kept), len(classes)), dtype=bool)
    position = {c: k for k, c in enumerate(classes)}
    for row, i in enumerate(kept):
        for label in samples[i].labels:
            targets[row, position[label]] = True
    predicted = scores.argmax(axis=1)
    return {
        "n": len(kept),
        "split": split_from,
        "classes": classes,
        "accuracy": float(targets[np.arange(len(kept)), predicted].mean()),
        "macro_auc": macro_auc(targets, scores),
        "errors": dict(errors),
    }


def _class_embeddings(clip: ClipModel, classes: list[str], templates: Sequence[str], settings: EvalSettings):
    tokenizer = clip.tokenizer.load()
    out = []
    for name in classes:
        readable = name.replace("_", " ")
        tokens = tokenizer([t.format(readable) for t in templates]).to(settings.device)
        with _autocast(settings):
            features = clip.model.encode_text(tokens, normalize=True).float()
        out.append(F.normalize(features.mean(dim=0), dim=-1))
    return torch.stack(out)


def macro_auc(targets: np.ndarray, scores: np.ndarray) -> float | None:
    """Mean one-vs-rest ROC AUC over the classes that have both positives and negatives."""
    from sklearn.metrics import roc_auc_score

    aucs = [
        roc_auc_score(targets[:, c], scores[:, c])
        for c in range(targets.shape[1])
        if 0 < targets[:, c].sum() < len(targets)
    ]
    return float(np.mean(aucs)) if aucs else None


# ------------------------------------------------------------------------------------------ entry point


def evaluate(
    clip: ClipModel,
    settings: EvalSettings,
    corpus: str | Sequence[str] | None = None,
    split: str = "test",
    row_filter: RowFilter | None = None,
    zeroshot: str | None = None,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    zeroshot_split: str | None = "test",
    zeroshot_ratios: SplitRatios | None = None,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    clip.model.to(settings.device)
    if corpus is not None:
        base = row_filter or RowFilter()
        wanted = RowFilter(split_tuple(split), base.license_groups, base.modalities, base.concepts)
        try:
            images, texts, captions, errors = encode_corpus(clip, corpus, wanted, settings)
        except ValueError as e:
            if getattr(e, "reason", None) != "corpus_empty":
                raise
            images, texts, captions, errors = torch.empty(0), torch.empty(0), [], {}
        results["retrieval"] = {
            "split": split,
            **retrieval_metrics(images, texts, captions),
            "errors": errors,
        }
    if zeroshot is not None:
        results["zeroshot"] = {
            "dataset": zeroshot,
            **zero_shot_classification(
                clip, zeroshot, settings, templates, split=zeroshot_split, ratios=zeroshot_ratios
            ),
        }
    return results


def split_tuple(split: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in split.split(",") if s.strip())


class TemplatesError(ReasonError, ValueError):
    """A zero-shot templates file that cannot be used (`templates_invalid`)."""


def read_templates(path: str | Path | None) -> tuple[str, ...]:
    """Prompt templates, one per line with `{}` for the class name; the defaults when `path` is None."""
    if path is None:
        return DEFAULT_TEMPLATES
    templates = tuple(line.strip() for line in Path(path).read_text().splitlines() if line.strip())
    bad = [t for t in templates if "{}" not in t]
    if not templates or bad:
        raise TemplatesError(
            "templates_invalid", f"{path}: every line needs a {{}} for the class name ({bad[:2]})"
        )
    return templates
