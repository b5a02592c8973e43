"""pHash search at scale: all pairs within Hamming radius 4 among 10M 64-bit hashes, on this machine.

The hashes: uniform random 64-bit codes with 1% planted near-copies (1-4 bits flipped from an earlier
code) and 0.5% exact repeats. Real pHashes are less uniform (blank slides and plots crowd together),
which makes buckets larger: treat the figure as a lower bound on cost. The search is
`curation.dedupe.hamming.hamming_pairs` (pigeonhole chunks, an exhaustive FAISS binary search inside
each chunk group), the function each pHash group of the pipeline runs.

Peers, each timed on a sample of queries and scaled up to all of them: FAISS's multi-hash index
(`IndexBinaryMultiHash`, the hash-table form of the same pigeonhole rule) and its brute-force index
(`IndexBinaryFlat`).

    .venv/bin/python benchmarks/bench_dedupe_hashes.py [--n 10000000] [--radius 4]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from curation.dedupe.hamming import hamming_pairs, to_binary


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def make_codes(n: int, seed: int = 0) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    near = rng.choice(np.arange(n // 2, n), n // 100, replace=False)
    sources = rng.integers(0, n // 2, len(near))
    flips = np.zeros(len(near), dtype=np.uint64)
    for k, bits in enumerate(rng.integers(1, 5, len(near))):
        for b in rng.choice(64, bits, replace=False):
            flips[k] |= np.uint64(1) << np.uint64(b)
    codes[near] = codes[sources] ^ flips
    repeats = rng.choice(np.arange(n // 2, n), n // 200, replace=False)
    codes[repeats] = codes[rng.integers(0, n // 2, len(repeats))]
    return codes, len(near) + len(repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--radius", type=int, default=4)
    parser.add_argument("--peer-queries", type=int, default=20_000)
    args = parser.parse_args()
    codes, planted = make_codes(args.n)
    print(f"{args.n:,} hashes, {planted:,} planted near-copies and repeats, radius {args.radius}")
    started = time.perf_counter()
    i, j, d = hamming_pairs(codes, args.radius)
    wall = time.perf_counter() - started
    print(
        f"medcorpus hamming_pairs (chunk groups + IndexBinaryFlat): {wall:.1f} s, {args.n / wall:,.0f} hashes/s, "
        f"{len(i):,} pairs (distance histogram {np.bincount(d, minlength=args.radius + 1).tolist()}), "
        f"peak RSS {peak_rss_gb():.2f} GB"
    )
    import faiss

    from curation.dedupe.hamming import chunks

    n_chunks, bits = chunks(args.radius)
    peers = [
        ("IndexBinaryMultiHash", faiss.IndexBinaryMultiHash(64, n_chunks, bits)),
        ("IndexBinaryFlat", faiss.IndexBinaryFlat(64)),
    ]
    queries = to_binary(codes[: args.peer_queries])
    for name, index in peers:
        index.add(to_binary(codes))
        started = time.perf_counter()
        index.range_search(queries, args.radius + 1)
        per_query = (time.perf_counter() - started) / args.peer_queries
        print(
            f"peer {name}: {per_query * 1e3:.3f} ms per query, about {per_query * args.n:,.0f} s for all "
            f"{args.n:,} (scaled from {args.peer_queries:,} queries), peak RSS {peak_rss_gb():.2f} GB"
        )
        del index


if __name__ == "__main__":
    main()
