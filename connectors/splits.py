"""Deterministic train/validation/test assignment by group (article, patient or study).

Every record of a group gets the same split, so no article's figures (or patient's images) straddle
train and test, and a rerun assigns the same splits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitRatios:
    train: float = 0.98
    validation: float = 0.01
    test: float = 0.01

    def __post_init__(self) -> None:
        values = (self.train, self.validation, self.test)
        if any(v < 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
            raise ValueError(f"split ratios must be non-negative and sum to 1, got {values}")

    @classmethod
    def parse(cls, text: str) -> SplitRatios:
        """Parse "98/1/1" or "0.8,0.1,0.1"."""
        parts = [float(p) for p in text.replace(",", "/").split("/")]
        if len(parts) != 3:
            raise ValueError(f"expected three split ratios (train/validation/test), got {text!r}")
        total = sum(parts)
        if total <= 0:
            raise ValueError(f"split ratios must not all be zero: {text!r}")
        return cls(*(p / total for p in parts))

    def as_text(self) -> str:
        return "/".join(f"{100 * v:g}" for v in (self.train, self.validation, self.test))


def assign_split(group_key: str, ratios: SplitRatios = SplitRatios(), salt: str = "") -> str:
    """The split of a group, from a hash of its key: uniform, stable across runs and machines."""
    digest = hashlib.sha256(f"{salt}{group_key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < ratios.train:
        return "train"
    if u < ratios.train + ratios.validation:
        return "validation"
    return "test"
