"""Near-identical perceptual hashes: all pairs of 64-bit codes within a Hamming radius, with FAISS.

Pigeonhole: split the 64 bits into `radius + 1` chunks; two codes that differ in at most `radius` bits
agree exactly on at least one chunk. So codes are grouped by (chunk, value), and each group is searched
exhaustively with FAISS's binary flat index (popcount over packed codes): exact at the radius, and cheap
because a group holds about N / 2^(64 / (radius + 1)) codes. The groups are the shuffle keys of the
distributed version (`band_keys`); on one machine `hamming_pairs` makes them by sorting.
(`IndexBinaryMultiHash`, the hash-table form of the same rule, answers the evaluation-set lookups in
`curation.dedupe.decontaminate`; for all pairs of a large set it was 5-7x slower than sorted groups.)
"""

from __future__ import annotations

import numpy as np

BITS = 64


def chunks(radius: int) -> tuple[int, int]:
    """(number of chunks, bits per chunk) that make a radius-`radius` search exact."""
    if not 0 <= radius < BITS // 2:
        raise ValueError(f"a Hamming radius must be between 0 and {BITS // 2 - 1}, got {radius}")
    n = radius + 1
    return n, BITS // n


def band_keys(code: int, radius: int) -> list[tuple[int, int]]:
    """(chunk index, chunk value) of a code: two codes within `radius` share at least one key."""
    n, bits = chunks(radius)
    mask = (1 << bits) - 1
    return [(i, (code >> (BITS - bits * (i + 1))) & mask) for i in range(n)]


def to_binary(codes: np.ndarray) -> np.ndarray:
    """uint64 codes as FAISS binary vectors: (n, 8) uint8, most significant byte first."""
    return np.ascontiguousarray(np.asarray(codes, dtype=">u8")).view(np.uint8).reshape(-1, 8)


def hamming_pairs(codes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i, j), i < j, with Hamming(codes[i], codes[j]) <= radius, and its distance.

    Identical codes are collapsed first and linked to their first occurrence (a chain, not a clique: a
    duplicate group needs only to be connected), so 10,000 copies of one blank image cost 9,999 pairs.
    """
    codes = np.asarray(codes, dtype=np.uint64)
    unique, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    same = np.flatnonzero(first[inverse] != np.arange(len(codes)))
    pairs_i, pairs_j, dists = [first[inverse[same]]], [same], [np.zeros(len(same), dtype=np.int64)]
    if len(unique) > 1 and radius > 0:
        i, j, d = _unique_pairs(unique, radius)
        pairs_i.append(first[i])
        pairs_j.append(first[j])
        dists.append(d)
    i, j, d = (np.concatenate(a) for a in (pairs_i, pairs_j, dists))
    low, high = np.minimum(i, j), np.maximum(i, j)
    return low, high, d


def _unique_pairs(unique: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs within `radius` among distinct codes: exhaustive search inside each (chunk, value) group."""
    import faiss

    n, bits = chunks(radius)
    binary = to_binary(unique)
    found_i, found_j, found_d = [], [], []
    for band in range(n):
        values = (unique >> np.uint64(BITS - bits * (band + 1))) & np.uint64((1 << bits) - 1)
        order = np.argsort(values, kind="stable")
        starts = np.flatnonzero(np.diff(values[order])) + 1
        for group in np.split(order, starts):
            if len(group) < 2:
                continue
            index = faiss.IndexBinaryFlat(BITS)
            members = binary[group]
            index.add(members)
            lims, distances, neighbours = index.range_search(members, radius + 1)  # FAISS: distance < radius
            queries = np.repeat(np.arange(len(group)), np.diff(lims).astype(np.int64))
            keep = queries < neighbours
            found_i.append(group[queries[keep]])
            found_j.append(group[neighbours[keep]])
            found_d.append(distances[keep].astype(np.int64))
    if not found_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    i, j, d = (np.concatenate(a) for a in (found_i, found_j, found_d))
    # A pair that agrees on several chunks was found in each of their groups: keep it once.
    _, once = np.unique(np.minimum(i, j) * len(unique) + np.maximum(i, j), return_index=True)
    return i[once], j[once], d[once]
