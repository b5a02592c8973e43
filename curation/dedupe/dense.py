"""Near-duplicate embeddings at corpus scale, the SemDeDup way: cluster, then search inside clusters.

1. k-means centroids trained on a sample (`train_centroids`, FAISS);
2. every vector assigned to its nearest centroid and to any other centroid almost as near
   (`assign_clusters`): a pair of near-duplicates that straddles a cluster boundary is then still
   found in a cluster both belong to; `benchmarks/bench_dedupe_scale.py` measures what is lost;
3. an exact search inside each cluster (`similar_pairs`): inner products on unit vectors, every
   candidate re-checked in float64, so the index can lose a pair (step 2) but never invent one.

Only one cluster's vectors are in memory at a time, which is what lets the distributed pipeline run
with memory bounded by the largest cluster rather than by the corpus.
"""

from __future__ import annotations

import numpy as np

# FAISS wants at least this many training points per centroid for a stable k-means.
MIN_POINTS_PER_CENTROID = 39


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32, C-contiguous), zero rows left as they are."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def cluster_count(total: int, sample: int, cluster_size: int) -> int:
    """How many clusters: about `cluster_size` vectors each, as many as the sample can train."""
    wanted = max(1, round(total / cluster_size))
    return max(1, min(wanted, sample // MIN_POINTS_PER_CENTROID))


def train_centroids(sample: np.ndarray, k: int, seed: int = 0, iterations: int = 20) -> np.ndarray:
    """Spherical k-means centroids (k, d) of a sample; deterministic for a seed and sample order."""
    import faiss

    sample = unit(sample)
    if k <= 1:
        return unit(sample.mean(axis=0, keepdims=True))
    kmeans = faiss.Kmeans(
        sample.shape[1],
        k,
        niter=iterations,
        seed=seed,
        spherical=True,
        verbose=False,
        min_points_per_centroid=1,
    )
    kmeans.train(sample)
    return unit(kmeans.centroids)


def assign_clusters(
    vectors: np.ndarray, centroids: np.ndarray, margin: float, max_clusters: int
) -> list[list[int]]:
    """For each vector, its nearest cluster and the others whose centroid similarity is within `margin`
    of the nearest's (at most `max_clusters` in all), nearest first."""
    import faiss

    if len(centroids) == 1:
        return [[0] for _ in range(len(vectors))]
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(unit(centroids))
    similarity, nearest = index.search(unit(vectors), min(max_clusters, len(centroids)))
    out = []
    for sims, ids in zip(similarity, nearest, strict=True):
        out.append([int(c) for s, c in zip(sims, ids, strict=True) if c >= 0 and s >= sims[0] - margin])
    return out


def similar_pairs(vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i, j), i < j, whose cosine similarity is at least `threshold`, and the similarity.

    FAISS's flat inner-product range search proposes the candidates (float32); each is recomputed in
    float64 and kept only if it really passes, so the result does not depend on FAISS's rounding.
    """
    import faiss

    vectors = unit(vectors)
    if len(vectors) < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    # Slack below the threshold: a float32 inner product may round a passing pair just under it.
    lims, _, neighbours = index.range_search(vectors, threshold - 1e-4)
    queries = np.repeat(np.arange(len(vectors)), np.diff(lims).astype(np.int64))
    keep = queries < neighbours
    i, j = queries[keep], neighbours[keep].astype(np.int64)
    exact = np.einsum("ij,ij->i", vectors[i].astype(np.float64), vectors[j].astype(np.float64))
    passed = exact >= threshold
    return i[passed], j[passed], exact[passed]
