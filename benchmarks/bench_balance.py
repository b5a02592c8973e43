"""The over-cap test of `medcorpus balance` at corpus scale: 1M rows, 50,000 concepts (Zipf-distributed,
1-8 concepts a row, as tagged captions have).

Peer: what `pipelines/balance.py` did before (the over-cap set rebuilt from the whole concept histogram
for every row), timed on a sample of rows and scaled to all of them. Ours: the set built once per run
(a side input), then one set intersection per row, timed on every row.

    .venv/bin/python benchmarks/bench_balance.py [--rows 1000000] [--concepts 50000]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

from curation.balance import over_cap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--concepts", type=int, default=50_000)
    parser.add_argument("--cap", type=int, default=200)
    parser.add_argument("--peer-rows", type=int, default=2_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 9, args.rows)
    ids = np.minimum(rng.zipf(1.3, int(sizes.sum())), args.concepts) - 1
    names = [f"C{k:07d}" for k in range(args.concepts)]
    rows, start = [], 0
    for size in sizes:
        rows.append(sorted({names[i] for i in ids[start : start + size]}))
        start += size
    after = Counter(c for row in rows for c in row)
    print(f"{args.rows:,} rows, {len(after):,} distinct concepts, cap {args.cap}")

    started = time.perf_counter()
    for row in rows[: args.peer_rows]:
        _ = set(row) & over_cap(after, args.cap)
    per_row = (time.perf_counter() - started) / args.peer_rows
    print(
        f"before (over-cap set per row): {per_row * 1e3:.2f} ms per row, about {per_row * args.rows / 60:.1f} CPU-minutes for all rows"
    )

    started = time.perf_counter()
    heavy = frozenset(over_cap(after, args.cap))
    hits = sum(1 for row in rows if heavy.intersection(row))
    wall = time.perf_counter() - started
    print(
        f"now (set once, side input): {wall:.2f} s for all {args.rows:,} rows ({wall / args.rows * 1e6:.2f} us per row), {hits:,} rows touch an over-cap concept"
    )


if __name__ == "__main__":
    main()
