"""Concept-balanced subsets (curation.balance)."""

from __future__ import annotations

import random

import pytest

from curation.balance import balance_by_concepts, concept_counts, draw, keep_pair, trim_to_cap


def corpus(seed: int = 0) -> list[tuple[str, list[str]]]:
    """1000 pairs of a head concept H, 200 with M, 20 tail pairs with T, 30 pairs without concepts."""
    rng = random.Random(seed)
    pairs = [(f"h{i}", ["H"] + (["T"] if i < 10 else [])) for i in range(1000)]
    pairs += [(f"m{i}", ["M", "H"] if rng.random() < 0.1 else ["M"]) for i in range(200)]
    pairs += [(f"t{i}", ["T"]) for i in range(10)]
    pairs += [(f"none{i}", []) for i in range(30)]
    return pairs


def test_cap_downsamples_head_and_keeps_tail():
    result = balance_by_concepts(corpus(), cap=100, seed=7)
    assert result.before["H"] == 1000 + sum(1 for _, c in corpus() if c == ["M", "H"])
    assert result.before["T"] == 20 and result.after["T"] == 20  # tail concepts kept whole
    assert 70 <= result.after["H"] <= 100  # sampled to about the cap, then trimmed to it
    assert 70 <= result.after["M"] <= 100
    assert result.kept_without_concepts == 30
    assert all(pid in result.kept_ids for pid in (f"none{i}" for i in range(30)))


def test_deterministic_and_order_independent():
    pairs = corpus()
    first = balance_by_concepts(pairs, cap=100, seed=1)
    assert balance_by_concepts(pairs, cap=100, seed=1).kept_ids == first.kept_ids
    shuffled = pairs[:]
    random.Random(3).shuffle(shuffled)
    assert set(balance_by_concepts(shuffled, cap=100, seed=1).kept_ids) == set(first.kept_ids)
    assert set(balance_by_concepts(pairs, cap=100, seed=2).kept_ids) != set(first.kept_ids)


def test_keep_pair_and_trim_agree_with_the_batch_function():
    pairs = corpus()
    result = balance_by_concepts(pairs, cap=50, seed="s")
    sampled = [(pid, cuis) for pid, cuis in pairs if keep_pair(pid, cuis, result.before, 50, "s")]
    dropped = trim_to_cap(sampled, result.before, concept_counts(sampled), 50, "s")
    assert {pid for pid, _ in sampled} - dropped == set(result.kept_ids)


def test_cap_is_exact_when_concepts_overlap():
    """Every pair of a head concept also carries a second head concept: sampling alone overshoots."""
    pairs = [(f"p{i}", ["A", "B", f"X{i % 7}"]) for i in range(600)]
    pairs += [(f"q{i}", ["B", "C"]) for i in range(400)]
    pairs += [(f"t{i}", ["T", "A"]) for i in range(5)]
    for seed in range(5):
        result = balance_by_concepts(pairs, cap=40, seed=seed)
        assert max(result.after.values()) <= 40, result.after
        assert result.after["T"] == 5  # the tail concept survives the trim


def test_large_cap_keeps_everything():
    pairs = corpus()
    assert len(balance_by_concepts(pairs, cap=10_000).kept_ids) == len(pairs)


def test_draw_is_uniform_enough():
    values = [draw(0, f"p{i}", "C1") for i in range(2000)]
    assert all(0 <= v < 1 for v in values)
    assert 0.45 < sum(values) / len(values) < 0.55


def test_bad_arguments():
    with pytest.raises(ValueError):
        balance_by_concepts([("a", ["X"])], cap=0)
    with pytest.raises(ValueError, match="unique"):
        balance_by_concepts([("a", ["X"]), ("a", ["Y"])], cap=5)
