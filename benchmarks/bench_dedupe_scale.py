"""Dedupe's embedding level at corpus scale on this machine: 250k / 500k / 1M vectors of 512-d.

The data: clustered synthetic vectors (2,000 topic centres, each vector a centre plus noise, so clusters
overlap the way real embeddings do) with 1% planted near-duplicates (cosine 0.96-0.995 to an earlier
vector). The path is the one the Beam pipeline runs, with the same functions (`curation.dedupe.dense`):
k-means on a 100k sample, assignment to the nearest centroid(s) within the margin, then an exact search
per cluster. Where Beam shuffles (cluster, vector) to its workers, this script writes each cluster's
vectors to a bucket file and reads one bucket at a time, so peak memory is one cluster plus one chunk
of input, never the corpus.

Peer: exact search (FAISS flat inner product over every vector) for a sample of 4,000 query vectors;
recall = the sampled queries' pairs found by the sharded path / those exact search finds.

    .venv/bin/python benchmarks/bench_dedupe_scale.py [--sizes 250000,500000,1000000]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from curation.dedupe.dense import assign_clusters, cluster_count, similar_pairs, train_centroids, unit

DIM = 512
CHUNK = 50_000
THRESHOLD = 0.95


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


class VectorFile:
    """n float32 vectors in a file, read a chunk at a time with plain reads: a memory map would count
    every page it touched as this process's memory, which a pipeline reading shards never holds."""

    def __init__(self, path: Path, n: int):
        self.path, self.n = path, n

    def __len__(self) -> int:
        return self.n

    def read(self, start: int, stop: int) -> np.ndarray:
        stop = min(stop, self.n)
        data = np.fromfile(self.path, dtype=np.float32, count=(stop - start) * DIM, offset=start * DIM * 4)
        return data.reshape(-1, DIM)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        with open(self.path, "rb") as f:
            out = np.empty((len(rows), DIM), dtype=np.float32)
            for k, row in enumerate(rows):
                f.seek(int(row) * DIM * 4)
                out[k] = np.frombuffer(f.read(DIM * 4), dtype=np.float32)
        return out


def generate(path: Path, n: int, seed: int = 0) -> VectorFile:
    """n unit vectors in a float32 file, written a chunk at a time."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(2000, DIM)).astype(np.float32))
    vectors = VectorFile(path, 0)
    with open(path, "wb") as f:
        for start in range(0, n, CHUNK):
            size = min(CHUNK, n - start)
            topic = rng.integers(0, len(centres), size)
            chunk = centres[topic] + rng.normal(scale=0.045, size=(size, DIM)).astype(
                np.float32
            )  # ~0.5 cos to centre
            copies = np.flatnonzero(rng.random(size) < 0.01)
            if start > 0 and len(copies):
                f.flush()
                vectors.n = start
                sources = vectors.gather(rng.integers(0, start, len(copies)))
                noise = rng.uniform(0.004, 0.012, size=(len(copies), 1)).astype(np.float32)
                chunk[copies] = sources + rng.normal(size=(len(copies), DIM)).astype(np.float32) * noise
            f.write(unit(chunk).tobytes())
    return VectorFile(path, n)


def sharded_pairs(
    vectors: VectorFile, work: Path, cluster_size: int, margin: float, sample_size: int
) -> tuple[set, dict]:
    n = len(vectors)
    timings = {}
    started = time.perf_counter()
    rank = np.random.default_rng(1).permutation(n)[:sample_size]  # the pipeline ranks by a hash of the id
    sample = vectors.gather(np.sort(rank))
    k = cluster_count(n, len(sample), cluster_size)
    centroids = train_centroids(sample, k, seed=0)
    del sample
    timings["kmeans"] = time.perf_counter() - started

    started = time.perf_counter()
    buckets = {c: open(work / f"bucket-{c}.bin", "wb") for c in range(k)}  # noqa: SIM115
    assigned = 0
    for start in range(0, n, CHUNK):
        chunk = vectors.read(start, start + CHUNK)
        for offset, clusters in enumerate(assign_clusters(chunk, centroids, margin, 3)):
            record = np.int64(start + offset).tobytes() + chunk[offset].tobytes()
            for c in clusters:
                buckets[c].write(record)
                assigned += 1
    for f in buckets.values():
        f.close()
    timings["assign+shuffle"] = time.perf_counter() - started

    started = time.perf_counter()
    pairs: set[tuple[int, int]] = set()
    largest = 0
    record = np.dtype([("id", np.int64), ("v", np.float32, DIM)])
    for c in range(k):
        path = work / f"bucket-{c}.bin"
        members = np.fromfile(path, dtype=record)
        path.unlink()
        largest = max(largest, len(members))
        i, j, _ = similar_pairs(members["v"], THRESHOLD)
        ids = members["id"]
        pairs.update(
            zip(np.minimum(ids[i], ids[j]).tolist(), np.maximum(ids[i], ids[j]).tolist(), strict=True)
        )
    timings["search"] = time.perf_counter() - started
    return pairs, {
        **timings,
        "clusters": k,
        "assignments_per_vector": assigned / n,
        "largest_cluster": largest,
    }


def exact_pairs_of(vectors: VectorFile, queries: np.ndarray) -> set[tuple[int, int]]:
    """Exact search of the query vectors against every vector (the peer), a chunk at a time."""
    import faiss

    found = set()
    q = vectors.gather(queries)
    for start in range(0, len(vectors), CHUNK * 4):
        block = vectors.read(start, start + CHUNK * 4)
        index = faiss.IndexFlatIP(DIM)
        index.add(block)
        lims, _, neighbours = index.range_search(q, THRESHOLD - 1e-4)
        for k, query in enumerate(queries):
            for other in neighbours[lims[k] : lims[k + 1]]:
                exact = float(np.dot(q[k].astype(np.float64), block[other].astype(np.float64)))
                if other + start != query and exact >= THRESHOLD:
                    other = other + start
                    found.add((min(int(query), int(other)), max(int(query), int(other))))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="250000,500000,1000000")
    parser.add_argument("--cluster-size", type=int, default=5_000)
    parser.add_argument("--margin", type=float, default=0.02)
    parser.add_argument("--sample", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=4000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if len(sizes) > 1:  # one process per size: peak memory is a per-process figure
        print(
            f"cores: {os.cpu_count()}, threshold {THRESHOLD}, cluster size {args.cluster_size}, margin {args.margin}"
        )
        for n in sizes:
            rest = [
                f"--cluster-size={args.cluster_size}",
                f"--margin={args.margin}",
                f"--sample={args.sample}",
            ]
            subprocess.run(
                [sys.executable, __file__, f"--sizes={n}", *rest, f"--queries={args.queries}"], check=True
            )
        return
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            started = time.perf_counter()
            vectors = generate(work / "vectors.f32", n)
            made = time.perf_counter() - started
            started = time.perf_counter()
            pairs, info = sharded_pairs(vectors, work, args.cluster_size, args.margin, args.sample)
            wall = time.perf_counter() - started
            dedupe_rss = peak_rss_gb()  # before the peer's exact search, which holds 200k-vector blocks
            queries = np.random.default_rng(2).choice(n, args.queries, replace=False)
            truth = exact_pairs_of(vectors, queries)
            qset = set(queries.tolist())
            found = {p for p in pairs if p[0] in qset or p[1] in qset}
            recall = len(found & truth) / len(truth) if truth else 1.0
            print(
                f"{n:>9,} vectors: {wall:6.1f} s ({n / wall:,.0f}/s; kmeans {info['kmeans']:.1f} s, assign+shuffle "
                f"{info['assign+shuffle']:.1f} s, search {info['search']:.1f} s), {info['clusters']} clusters "
                f"(largest {info['largest_cluster']:,}, {info['assignments_per_vector']:.2f} per vector), "
                f"{len(pairs):,} pairs; recall vs exact on {args.queries} queries {recall:.4f} "
                f"({len(found & truth)}/{len(truth)}); peak RSS {dedupe_rss:.2f} GB (with the peer's exact search "
                f"{peak_rss_gb():.2f} GB); data made in {made:.1f} s"
            )


if __name__ == "__main__":
    main()
