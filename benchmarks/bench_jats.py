"""Figure extraction throughput: connectors.jats.parse_jats against pubmed_parser.parse_pubmed_caption.

Both read each article from its path (page-cached after the first pass) and run in this one process
on one core, over the sample articles repeated to at least ``--articles`` documents. Besides speed,
it prints what each finds per article: figure records, non-empty captions and graphic hrefs.

    .venv/bin/python benchmarks/bench_jats.py [--articles 3000] [FILE ...]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

from connectors.jats import parse_jats

SAMPLES = Path(__file__).parents[1] / "sample_data" / "jats"


def medcorpus_counts(path: str) -> tuple[int, int, int]:
    figures = parse_jats(Path(path).read_bytes()).figures
    return len(figures), sum(1 for f in figures if f.caption), sum(1 for f in figures if f.href)


def pubmed_parser_counts(path: str) -> tuple[int, int, int]:
    import pubmed_parser

    figures = pubmed_parser.parse_pubmed_caption(path) or []
    return (
        len(figures),
        sum(1 for f in figures if (f.get("fig_caption") or "").strip()),
        sum(1 for f in figures if f.get("graphic_ref")),
    )


def caption_agreement(path: str) -> tuple[int, int]:
    """Figures whose pubmed_parser caption equals ours once whitespace is normalised, of those it finds."""
    import pubmed_parser

    ours = {f.key: f.caption for f in parse_jats(Path(path).read_bytes()).figures}
    theirs = pubmed_parser.parse_pubmed_caption(path) or []
    same = sum(1 for f in theirs if " ".join((f.get("fig_caption") or "").split()) == ours.get(f["fig_id"]))
    return same, len(theirs)


def timed(extract: Callable[[str], tuple[int, int, int]], paths: list[str]) -> tuple[float, int]:
    figures = 0
    start = time.perf_counter()
    for path in paths:
        figures += extract(path)[0]
    return time.perf_counter() - start, figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="*", type=Path, help="JATS files (default: sample_data/jats)")
    parser.add_argument("--articles", type=int, default=3000, help="documents to parse per contender")
    args = parser.parse_args()
    files = [str(p) for p in (args.files or sorted(SAMPLES.glob("*.*ml")))]
    try:
        import pubmed_parser  # noqa: F401
    except ImportError as exc:
        raise SystemExit("the peer is missing: pip install 'medcorpus[bench]' (pubmed-parser)") from exc

    contenders = {"medcorpus.parse_jats": medcorpus_counts, "pubmed_parser": pubmed_parser_counts}
    print("What each finds per article (figure records / non-empty captions / graphic hrefs):")
    print(f"  {'article':28s}" + "".join(f"{name:>24s}" for name in contenders))
    totals = {name: [0, 0, 0] for name in contenders}
    for path in files:
        row = f"  {Path(path).name:28s}"
        for name, extract in contenders.items():
            counts = extract(path)
            totals[name] = [t + c for t, c in zip(totals[name], counts, strict=True)]
            row += f"{'/'.join(map(str, counts)):>24s}"
        print(row)
    print(f"  {'total':28s}" + "".join(f"{'/'.join(map(str, t)):>24s}" for t in totals.values()))
    agreement = [caption_agreement(path) for path in files]
    print(
        "pubmed_parser captions identical to ours: "
        + ", ".join(f"{Path(p).name} {same}/{n}" for p, (same, n) in zip(files, agreement, strict=True))
    )

    paths = files * math.ceil(args.articles / len(files))
    print(f"\nThroughput, {len(paths)} articles ({len(files)} files repeated), one process, one core:")
    for name, extract in contenders.items():
        extract(files[0])  # warm imports and caches outside the clock
        seconds, figures = timed(extract, paths)
        print(
            f"  {name:22s} {len(paths) / seconds:8.1f} articles/s  {figures / seconds:9.1f} figures/s"
            f"  ({seconds:.2f} s, {figures} figures)"
        )


if __name__ == "__main__":
    main()
