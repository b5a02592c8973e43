"""Concept-balanced subsets, MetaCLIP style: no concept contributes more than `cap` pairs.

Algorithm (MetaCLIP, Xu et al. 2023, "Demystifying CLIP Data", Algorithm 1, with concepts as entries,
plus a trim that makes the cap exact):

1. count[c] = number of pairs mentioning concept c (a pair counts once per distinct concept).
2. Each concept c gets a sampling probability p[c] = min(1, cap / count[c]): tail concepts
   (count <= cap) keep every pair; head concepts are down-sampled to about `cap` pairs.
3. A pair is kept when ANY of its concepts draws it: for each concept c of the pair, draw
   u(seed, pair id, c) in [0, 1) and keep the pair if u < p[c] for some c.
4. Pairs with no concepts are kept (they carry no concept to balance; drop them upstream if unwanted).
5. Trim. Because a pair can be kept through another concept, a head concept may end a little above
   `cap` after step 3 (MetaCLIP stops there: "about cap"). For each such concept, in CUI order, the
   excess pairs are dropped: pairs without any tail concept first, then by a fixed draw. Dropping only
   lowers counts, so every concept ends at or below `cap`. A tail concept loses a pair only when that
   pair also carries a concept already over the cap and no other pair could be dropped instead.

The random draw u is the first 8 bytes of SHA-256("{seed}\\x1f{pair id}\\x1f{cui}") as an integer over 2**64,
not a shared RNG: the result does not depend on input order, and any worker can decide step 3 for any
pair given only the counts. Step 5 only needs the kept pairs of the over-cap concepts, a small set.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass
class BalanceResult:
    kept_ids: list[str]  # in input order
    before: dict[str, int]  # concept -> pairs mentioning it, in the input
    after: dict[str, int]  # concept -> pairs mentioning it, among the kept pairs
    kept_without_concepts: int


def concept_counts(pairs: Iterable[tuple[str, Iterable[str]]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for _, cuis in pairs:
        counts.update(set(cuis))
    return counts


def draw(seed: int | str, pair_id: str, cui: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, pair id, concept)."""
    digest = hashlib.sha256(f"{seed}\x1f{pair_id}\x1f{cui}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def keep_pair(
    pair_id: str, cuis: Iterable[str], counts: Mapping[str, int], cap: int, seed: int | str
) -> bool:
    """Step 3 for one pair, given the global counts: usable inside a parallel map."""
    cuis = set(cuis)
    if not cuis:
        return True
    return any(draw(seed, pair_id, c) < min(1.0, cap / counts[c]) for c in cuis)


def over_cap(after: Mapping[str, int], cap: int) -> set[str]:
    return {c for c, n in after.items() if n > cap}


def trim_to_cap(
    kept: Iterable[tuple[str, Iterable[str]]],
    before: Mapping[str, int],
    after: Mapping[str, int],
    cap: int,
    seed: int | str,
) -> set[str]:
    """Step 5: the ids to drop so no concept exceeds `cap`.

    `kept` must hold (at least) every kept pair that mentions a concept over the cap in `after`.
    """
    counts = Counter(after)
    heavy = sorted(over_cap(after, cap))
    by_concept: dict[str, list[tuple[str, frozenset[str]]]] = {c: [] for c in heavy}
    for pid, cuis in kept:
        cuis = frozenset(cuis)
        for c in cuis & set(heavy):
            by_concept[c].append((pid, cuis))
    dropped: set[str] = set()
    for concept in heavy:
        excess = counts[concept] - cap
        if excess <= 0:
            continue
        candidates = [(pid, cuis) for pid, cuis in by_concept[concept] if pid not in dropped]
        candidates.sort(
            key=lambda item: (any(before[c] <= cap for c in item[1]), draw(seed, item[0], "trim"), item[0])
        )
        for pid, cuis in candidates[:excess]:
            dropped.add(pid)
            counts.subtract(cuis)
    return dropped


def balance_by_concepts(
    pairs: Iterable[tuple[str, Iterable[str]]], cap: int, seed: int | str = 0
) -> BalanceResult:
    """Keep a concept-balanced subset of (pair id, CUIs); deterministic for a given seed.

    Raises ValueError for cap < 1 or a repeated pair id (ids key the random draws).
    """
    if cap < 1:
        raise ValueError(f"cap must be at least 1, got {cap}")
    materialised = [(pid, sorted(set(cuis))) for pid, cuis in pairs]
    ids = Counter(pid for pid, _ in materialised)
    repeated = [pid for pid, n in ids.items() if n > 1]
    if repeated:
        raise ValueError(f"pair ids must be unique; repeated: {repeated[:5]}")
    before = concept_counts(materialised)
    sampled = [(pid, cuis) for pid, cuis in materialised if keep_pair(pid, cuis, before, cap, seed)]
    dropped = trim_to_cap(sampled, before, concept_counts(sampled), cap, seed)
    kept = [(pid, cuis) for pid, cuis in sampled if pid not in dropped]
    return BalanceResult(
        kept_ids=[pid for pid, _ in kept],
        before=dict(before),
        after=dict(concept_counts(kept)),
        kept_without_concepts=sum(1 for _, cuis in kept if not cuis),
    )
