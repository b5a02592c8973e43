"""Decontamination: which pairs show an image of an evaluation set, at the image levels of dedupe.

Evaluation sets are small next to a corpus (thousands to a few hundred thousand images), so their
signatures form one index that every worker loads once and every pair is looked up in: identical pixel
hashes, pHashes within the radius (FAISS `IndexBinaryMultiHash`), and image embeddings above the
threshold (exact inner products, re-checked in float64).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from curation.dedupe.dense import unit
from curation.dedupe.hamming import BITS, chunks, to_binary
from curation.dedupe.signatures import Signature


class EvalIndex:
    def __init__(self, items: list[Signature], phash_radius: int | None, image_threshold: float | None):
        import faiss

        self.phash_radius, self.image_threshold = phash_radius, image_threshold
        self.by_sha: dict[str, list[str]] = defaultdict(list)
        for item in items:
            if item.image_sha256:
                self.by_sha[item.image_sha256].append(item.node.id)
        hashed = [i for i in items if i.phash is not None]
        self.phash_ids = [i.node.id for i in hashed]
        self.phash_index = None
        if phash_radius is not None and hashed:
            n, bits = chunks(phash_radius)
            self.phash_index = faiss.IndexBinaryMultiHash(BITS, n, bits)
            self.phash_index.add(to_binary(np.array([i.phash for i in hashed], dtype=np.uint64)))
        embedded = [i for i in items if i.image_vector is not None]
        self.vector_ids = [i.node.id for i in embedded]
        self.vectors = unit(np.stack([i.image_vector for i in embedded])) if embedded else None

    def matches(self, pairs: list[Signature]) -> list[list[tuple[str, str, float]]]:
        """For each pair, its matches as (eval item id, level, similarity)."""
        found: list[list[tuple[str, str, float]]] = [[] for _ in pairs]
        for k, pair in enumerate(pairs):
            for eval_id in self.by_sha.get(pair.image_sha256 or "", []):
                found[k].append((eval_id, "exact_image", 1.0))
        hashed = [k for k, p in enumerate(pairs) if p.phash is not None]
        if self.phash_index is not None and hashed:
            codes = to_binary(np.array([pairs[k].phash for k in hashed], dtype=np.uint64))
            lims, distances, neighbours = self.phash_index.range_search(codes, self.phash_radius + 1)
            for q, k in enumerate(hashed):
                for d, n in zip(
                    distances[lims[q] : lims[q + 1]], neighbours[lims[q] : lims[q + 1]], strict=True
                ):
                    found[k].append((self.phash_ids[n], "phash", 1 - int(d) / BITS))
        embedded = [k for k, p in enumerate(pairs) if p.image_vector is not None]
        if self.vectors is not None and self.image_threshold is not None and embedded:
            queries = unit(np.stack([pairs[k].image_vector for k in embedded])).astype(np.float64)
            similarity = queries @ self.vectors.T.astype(np.float64)
            for q, k in enumerate(embedded):
                for n in np.flatnonzero(similarity[q] >= self.image_threshold):
                    found[k].append((self.vector_ids[n], "image_embedding", float(similarity[q, n])))
        return found
