"""Near-identical perceptual hashes: all pairs of 64-bit codes within a Hamming radius, with FAISS.

Pigeonhole: split the 64 bits into `radius + 1` chunks; two codes that differ in at most `radius` bits
agree exactly on at least one chunk. FAISS's `IndexBinaryMultiHash` indexes each chunk in a hash table
and verifies candidates with the full Hamming distance, so the search is exact at that radius. The same
chunks are the shuffle keys of the distributed version (`band_keys`): each (chunk, value) group is
searched on its own, and a pair is found in every group the two codes share.
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
    import faiss

    codes = np.asarray(codes, dtype=np.uint64)
    unique, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    same = np.flatnonzero(first[inverse] != np.arange(len(codes)))
    pairs_i, pairs_j, dists = [first[inverse[same]]], [same], [np.zeros(len(same), dtype=np.int64)]
    if len(unique) > 1 and radius > 0:
        n, bits = chunks(radius)
        index = faiss.IndexBinaryMultiHash(BITS, n, bits)
        binary = to_binary(unique)
        index.add(binary)
        lims, distances, neighbours = index.range_search(binary, radius + 1)  # FAISS: distance < radius
        queries = np.repeat(np.arange(len(unique)), np.diff(lims).astype(np.int64))
        keep = queries < neighbours
        pairs_i.append(first[queries[keep]])
        pairs_j.append(first[neighbours[keep]])
        dists.append(distances[keep].astype(np.int64))
    i, j, d = (np.concatenate(a) for a in (pairs_i, pairs_j, dists))
    low, high = np.minimum(i, j), np.maximum(i, j)
    return low, high, d
