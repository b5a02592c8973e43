"""Embeddings kept beside a corpus, so reruns and runs with other thresholds never embed twice.

`<corpus>/embeddings/<model identity>/<data shard name>`: one Parquet file per data shard with `id`,
`key` (a hash of what was embedded: the image's pixel hash, or the caption), `vector` and `model`. A
cached vector is used only when its id and key both match the row, so a rebuilt corpus whose pair
changed under the same id gets a fresh vector.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from connectors import fs
from connectors.corpus import write_table

EMBEDDINGS_DIR = "embeddings"

log = logging.getLogger(__name__)


def cache_url(corpus: str, identity: str, shard_url: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._@-]+", "_", identity)
    return fs.join(corpus, EMBEDDINGS_DIR, slug, shard_url.rsplit("/", 1)[-1])


def read_cached(url: str) -> dict[str, tuple[str, np.ndarray]]:
    """id -> (key, vector) of a cache file; empty when there is none or it cannot be read."""
    filesystem, path = fs.filesystem(url)
    if not filesystem.exists(path):
        return {}
    try:
        with filesystem.open(path, "rb") as f:
            table = pq.read_table(f, columns=["id", "key", "vector"])
    except (OSError, pa.ArrowException) as exc:
        log.warning("ignoring an unreadable embedding cache %s: %s", url, exc)
        return {}
    vectors = np.asarray(table["vector"].combine_chunks().flatten(), dtype=np.float32)
    vectors = vectors.reshape(table.num_rows, -1) if table.num_rows else vectors.reshape(0, 0)
    return {
        i: (k, v) for i, k, v in zip(table["id"].to_pylist(), table["key"].to_pylist(), vectors, strict=True)
    }


def write_cached(url: str, identity: str, entries: dict[str, tuple[str, np.ndarray]]) -> bool:
    """Write a shard's vectors; False (with a warning) when the corpus folder is not writable."""
    ids = sorted(entries)
    dim = len(entries[ids[0]][1]) if ids else 0
    flat = np.concatenate([entries[i][1] for i in ids]).astype(np.float32) if ids else np.zeros(0, np.float32)
    table = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "key": pa.array([entries[i][0] for i in ids], pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim),
            "model": pa.array([identity] * len(ids), pa.string()),
        }
    )
    try:
        write_table(table, url)
    except OSError as exc:
        log.warning("could not keep embeddings at %s (%s): the next run will compute them again", url, exc)
        return False
    return True
