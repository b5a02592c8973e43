"""Micro precision/recall of concept sets against a gold standard."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PrecisionRecall:
    true_positives: int
    predicted: int
    gold: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.gold if self.gold else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def micro_precision_recall(
    gold: Sequence[Iterable[str]], predicted: Sequence[Iterable[str]]
) -> PrecisionRecall:
    """Over (text, CUI) pairs: each text's CUIs count once, however many times they are mentioned."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold rows but {len(predicted)} predictions")
    tp = n_pred = n_gold = 0
    for g, p in zip(gold, predicted, strict=True):
        g, p = set(g), set(p)
        tp += len(g & p)
        n_pred += len(p)
        n_gold += len(g)
    return PrecisionRecall(tp, n_pred, n_gold)


def read_gold(path: str | Path) -> list[dict]:
    """JSONL rows of {"id", "text", "cuis"}."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
