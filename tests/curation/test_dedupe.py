"""Dedupe's plain-Python parts: perceptual hashes, FAISS Hamming and dense searches, groups and the keep
policy, checked against brute force and real images."""

from __future__ import annotations

import io
import json
from itertools import combinations

import numpy as np
import pytest
import skimage.data
from PIL import Image

from curation.dedupe.decontaminate import EvalIndex
from curation.dedupe.dense import assign_clusters, similar_pairs, train_centroids, unit
from curation.dedupe.groups import Edge, Node, eval_removal, resolve_duplicates
from curation.dedupe.hamming import band_keys, hamming_pairs
from curation.dedupe.signatures import Signature, caption_key, hamming, normalize_caption, phash


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def test_phash_survives_reencoding_rescaling_and_greyscale_but_separates_other_images():
    retina = Image.fromarray(skimage.data.retina())
    code = phash(jpeg(retina))
    assert hamming(code, phash(jpeg(retina, quality=15))) <= 4
    assert hamming(code, phash(jpeg(retina.resize((400, 400))))) <= 4
    assert hamming(code, phash(jpeg(retina.convert("L")))) <= 4
    others = [skimage.data.immunohistochemistry(), skimage.data.camera(), skimage.data.cell()]
    assert all(hamming(code, phash(jpeg(Image.fromarray(o)))) > 16 for o in others)
    assert 0 <= code < 2**64


def test_phash_of_undecodable_bytes_raises():
    with pytest.raises(OSError):
        phash(b"not an image")


def test_caption_key_folds_case_punctuation_accents_and_ignores_short_captions():
    a = "Axial CT of the abdomen, showing a hypodense lesion in the right hepatic lobe."
    b = "AXIAL CT of the abdomen  showing a hypodense lesion in the right hépatic lobe"
    assert normalize_caption(a) == normalize_caption(b)
    assert caption_key(a, 10) == caption_key(b, 10) is not None
    assert caption_key(a.replace("right", "left"), 10) != caption_key(a, 10)
    assert caption_key("Representative images.", 10) is None


@pytest.mark.parametrize("radius", [0, 1, 3, 4, 6])
def test_hamming_pairs_equal_brute_force(radius):
    rng = np.random.default_rng(radius)
    base = rng.integers(0, 2**63, size=150, dtype=np.uint64)
    flips = [
        base[k] ^ np.uint64(sum(1 << int(b) for b in rng.choice(64, rng.integers(0, 8), replace=False)))
        for k in range(60)
    ]
    codes = np.concatenate([base, np.array(flips, dtype=np.uint64), base[:5]])  # exact repeats too
    i, j, d = hamming_pairs(codes, radius)
    found = {(int(a), int(b)) for a, b in zip(i, j, strict=True)}
    assert all(a < b for a, b in found) and len(found) == len(i)
    truth = {
        (a, b)
        for a, b in combinations(range(len(codes)), 2)
        if hamming(int(codes[a]), int(codes[b])) <= radius
    }
    # Identical codes are chained to their first occurrence rather than all linked pairwise: the same
    # groups, fewer edges. Compare connected pairs of codes instead of raw pairs.
    assert _closure(found, len(codes)) == _closure(truth, len(codes))
    for a, b, dist in zip(i, j, d, strict=True):
        assert hamming(int(codes[a]), int(codes[b])) == dist <= radius


def _closure(pairs, n):
    parent = list(range(n))

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[root(a)] = root(b)
    return {(a, b) for a, b in combinations(range(n), 2) if root(a) == root(b)}


def test_band_keys_are_shared_by_every_pair_within_the_radius():
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = int(rng.integers(0, 2**63))
        b = a ^ sum(1 << int(x) for x in rng.choice(64, 4, replace=False))
        assert set(band_keys(a, 4)) & set(band_keys(b, 4))


def test_similar_pairs_equal_brute_force_in_float64():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(300, 32)).astype(np.float32)
    vectors[200:260] = vectors[:60] + rng.normal(scale=0.15, size=(60, 32))
    i, j, s = similar_pairs(vectors, 0.97)
    v = unit(vectors).astype(np.float64)
    sims = v @ v.T
    truth = {(a, b) for a, b in zip(*np.nonzero(np.triu(sims >= 0.97, k=1)), strict=True)}
    assert {(int(a), int(b)) for a, b in zip(i, j, strict=True)} == truth
    assert len(truth) > 20
    assert np.allclose(s, [sims[a, b] for a, b in zip(i, j, strict=True)])


def test_assign_clusters_nearest_first_and_neighbours_within_the_margin():
    centroids = unit(np.array([[1, 0], [0.96, 0.28], [0, 1]], dtype=np.float32))
    vectors = np.array([[1, 0.05], [0, 1]], dtype=np.float32)
    assert assign_clusters(vectors, centroids, margin=0.05, max_clusters=3) == [[0, 1], [2]]
    assert assign_clusters(vectors, centroids, margin=0.0, max_clusters=3) == [[0], [2]]


def test_train_centroids_is_deterministic_for_a_seed():
    sample = np.random.default_rng(2).normal(size=(400, 16)).astype(np.float32)
    a, b = train_centroids(sample, 5, seed=3), train_centroids(sample, 5, seed=3)
    assert a.shape == (5, 16) and np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)


def node(i, license_group="commercial", pixels=100, chars=10):
    return Node(i, license_group, pixels, chars)


def test_a_group_is_a_connected_component_and_keeps_one_pair_by_the_policy():
    a = node("a", "noncommercial", pixels=10_000)  # biggest, but a less permissive licence
    b = node("b", "commercial", pixels=5_000)
    c = node("c", "commercial", pixels=5_000, chars=50)  # same licence and size as b, longer caption
    d = node("d", "commercial", pixels=100)
    edges = [Edge(a, b, "phash", 0.95), Edge(b, c, "exact_image", 1.0), Edge(a, d, "image_embedding", 0.97)]
    removals = {r.id: r for r in resolve_duplicates(edges)}
    assert set(removals) == {"a", "b", "d"}  # c survives: commercial, largest, longest caption
    assert {r.kept for r in removals.values()} == {"c"}
    assert (removals["b"].matched, removals["b"].level) == ("c", "exact_image")
    # d never matched c itself: its detail names the neighbour it matched and that level.
    assert (removals["d"].matched, removals["d"].level, removals["d"].similarity) == (
        "a",
        "image_embedding",
        0.97,
    )
    detail = json.loads(removals["d"].detail())
    assert detail == {"kept": "c", "matched": "a", "level": "image_embedding", "similarity": 0.97}


def test_the_strongest_evidence_for_a_pair_is_reported_and_ties_break_by_id():
    a, b = node("b"), node("a")
    removals = resolve_duplicates([Edge(a, b, "image_embedding", 0.99), Edge(b, a, "exact_image", 1.0)])
    assert [(r.id, r.kept, r.level) for r in removals] == [("b", "a", "exact_image")]
    assert resolve_duplicates([]) == []


def test_eval_removal_prefers_the_strongest_match():
    removal = eval_removal("p", [("eval/x/2", "image_embedding", 0.99), ("eval/x/1", "phash", 0.95)])
    assert (removal.reason, removal.kept, removal.level) == ("eval_overlap", "eval/x/1", "phash")
    assert eval_removal("p", []) is None


def test_eval_index_matches_each_image_level():
    rng = np.random.default_rng(4)
    v = unit(rng.normal(size=(3, 8)))
    evals = [
        Signature(Node("eval/e/0"), -1, image_sha256="s0", phash=0xFF, image_vector=v[0]),
        Signature(Node("eval/e/1"), -1, image_sha256="s1", phash=0xFFFF0000, image_vector=v[1]),
    ]
    index = EvalIndex(evals, phash_radius=4, image_threshold=0.99)
    pairs = [
        Signature(Node("p0"), 0, image_sha256="s0"),
        Signature(Node("p1"), 0, phash=0xFFFF0003),
        Signature(Node("p2"), 0, image_vector=v[1] * 3),
        Signature(Node("p3"), 0, image_sha256="zz", phash=0x0F0F0F0F0F0F0F0F, image_vector=v[2]),
    ]
    found = index.matches(pairs)
    assert found[0] == [("eval/e/0", "exact_image", 1.0)]
    assert found[1] == [("eval/e/1", "phash", 1 - 2 / 64)]
    assert [(e, lvl) for e, lvl, _ in found[2]] == [("eval/e/1", "image_embedding")]
    assert found[3] == []
