"""The char-3-gram TF-IDF vectors and nmslib HNSW index scispacy's CandidateGenerator reads.

Written in the file layout of `scispacy.candidate_generation.LinkerPaths.from_directory`, so scispacy
loads it unchanged. Built here rather than with scispacy 0.6.2's `create_tfidf_ann_index` because that
function refuses recent scipy (it stores float16 sparse matrices), hard-codes `min_df=10` (most aliases
of a small KB would get empty vectors) and fits the vocabulary on aliases alone. With an alias-only
vocabulary every 3-gram of a mention that no alias has is dropped, so "liver shows no" embeds exactly
like "liver" and scores 1.0 against it; fitting on aliases plus ordinary caption words keeps those
3-grams in the vector and the similarity honest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

LINKER_FILES = (
    "nmslib_index.bin",
    "tfidf_vectorizer.joblib",
    "tfidf_vectors_sparse.npz",
    "concept_aliases.json",
)


def build_tfidf_ann_index(
    aliases: Sequence[str],
    out_dir: str | Path,
    *,
    vocabulary_texts: Iterable[str] = (),
    hnsw_m: int = 30,
    ef_construction: int = 200,
    threads: int = 1,
) -> int:
    """Fit the vectorizer on aliases + vocabulary_texts, embed the aliases, build and save the index.

    Returns the number of aliases indexed (aliases whose vector is empty are left out, as nmslib
    cannot index a zero vector). One thread by default: HNSW built by several threads is not
    reproducible, and a KB of a few thousand aliases builds in seconds anyway.
    """
    import joblib
    import nmslib
    import scipy.sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3), min_df=1, dtype=np.float32)
    vectorizer.fit([*aliases, *vocabulary_texts])
    vectors = vectorizer.transform(aliases).astype(np.float32)
    non_empty = np.asarray(vectors.sum(axis=1)).reshape(-1) != 0
    kept_aliases = [a for a, keep in zip(aliases, non_empty, strict=True) if keep]
    vectors = vectors[non_empty]
    if len(kept_aliases) < len(aliases):
        log.warning("%d aliases have no 3-gram and are not indexed", len(aliases) - len(kept_aliases))

    index = nmslib.init(method="hnsw", space="cosinesimil_sparse", data_type=nmslib.DataType.SPARSE_VECTOR)
    index.addDataPointBatch(vectors)
    index.createIndex({"M": hnsw_m, "efConstruction": ef_construction, "indexThreadQty": threads, "post": 0})

    index.saveIndex(str(out_dir / "nmslib_index.bin"))
    joblib.dump(vectorizer, out_dir / "tfidf_vectorizer.joblib")
    # float32, not scispacy's float16: recent scipy has no float16 sparse support; its loader casts anyway.
    scipy.sparse.save_npz(out_dir / "tfidf_vectors_sparse.npz", vectors)
    (out_dir / "concept_aliases.json").write_text(json.dumps(kept_aliases), encoding="utf-8")
    return len(kept_aliases)
