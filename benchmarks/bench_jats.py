"""Figure extraction throughput: connectors.jats.parse_jats against pubmed_parser.parse_pubmed_caption.

The corpus is every distinct real article the repository holds (tests/connectors/data/jats_realworld/:
many publishers, NLM 2.3 to JATS 1.3; sample_data/jats/), each parsed once per pass, never copies of
a few files. Both contenders read each article from its path (page-cached after the first pass), in
this one process on one core; the passes alternate between them and the best pass counts, so a busy
machine hurts both alike. It prints what each finds, the articles/s of both and their ratio, and
where medcorpus's time goes.

    .venv/bin/python benchmarks/bench_jats.py [--passes 5] [FILE ...]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from connectors import jats

ROOT = Path(__file__).resolve().parents[1]
CORPUS = [ROOT / "tests" / "connectors" / "data" / "jats_realworld", ROOT / "sample_data" / "jats"]


def corpus_files() -> list[Path]:
    files = [p for folder in CORPUS for p in sorted(folder.rglob("*")) if p.suffix in (".xml", ".nxml")]
    unique: dict[bytes, Path] = {}
    for path in files:
        unique.setdefault(path.read_bytes(), path)  # a file stored twice would flatter the page cache
    return list(unique.values())


def medcorpus_counts(path: str) -> tuple[int, int, int]:
    try:
        figures = jats.parse_jats(Path(path).read_bytes()).figures
    except jats.JatsError:
        return 0, 0, 0
    return len(figures), sum(1 for f in figures if f.caption), sum(1 for f in figures if f.href)


def pubmed_parser_counts(path: str) -> tuple[int, int, int]:
    import pubmed_parser

    try:
        figures = pubmed_parser.parse_pubmed_caption(path) or []
    except Exception:  # noqa: BLE001 - the peer's crashes are counted, not fatal
        return -1, 0, 0
    return (
        len(figures),
        sum(1 for f in figures if (f.get("fig_caption") or "").strip()),
        sum(1 for f in figures if f.get("graphic_ref")),
    )


def one_pass(extract: Callable[[str], tuple[int, int, int]], paths: list[str]) -> list[float]:
    """CPU seconds of each article."""
    seconds = []
    for path in paths:
        start = time.process_time()
        extract(path)
        seconds.append(time.process_time() - start)
    return seconds


def where_the_time_goes(paths: list[str], passes: int) -> dict[str, float]:
    """Seconds per pass of each stage of parse_jats, best of ``passes``."""
    data = [Path(p).read_bytes() for p in paths]
    stages: dict[str, Callable[[], object]] = {}
    trees: list = []

    def parse() -> None:
        trees.clear()
        for d in data:
            with contextlib.suppress(jats.JatsError):
                trees.append(jats._article_element(jats._parse(d)))

    stages["find the never-read parts in the bytes"] = lambda: [jats._never_read(d) for d in data]
    stages["cut them, build the tree (libxml2), free it"] = parse
    parse()
    stages["front matter"] = lambda: [jats._meta(t) for t in trees]
    stages["find floats and index the xrefs citing them"] = lambda: [
        jats._Mentions(jats._floats_and_citing_xrefs(t)[1]) for t in trees
    ]
    stages["floats: graphics, labels, captions, mentions"] = lambda: [jats._floats(t) for t in trees]
    best: dict[str, float] = {}
    for _ in range(passes):
        for name, stage in stages.items():
            start = time.process_time()
            stage()
            best[name] = min(best.get(name, float("inf")), time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="*", type=Path, help="JATS files (default: every real article here)")
    parser.add_argument("--passes", type=int, default=5, help="passes over the corpus per contender")
    args = parser.parse_args()
    paths = [str(p) for p in (args.files or corpus_files())]
    try:
        import pubmed_parser  # noqa: F401
    except ImportError as exc:
        raise SystemExit("the peer is missing: pip install 'medcorpus[bench]' (pubmed-parser)") from exc

    contenders = {"medcorpus.parse_jats": medcorpus_counts, "pubmed_parser": pubmed_parser_counts}
    megabytes = sum(Path(p).stat().st_size for p in paths) / 1e6
    print(
        f"{len(paths)} distinct articles, {megabytes:.1f} MB, {len({Path(p).parent for p in paths})} folders"
    )
    for name, extract in contenders.items():
        counts = [extract(p) for p in paths]
        crashed = sum(1 for c in counts if c[0] < 0)
        figures, captions, hrefs = (sum(max(c[i], 0) for c in counts) for i in range(3))
        print(
            f"  {name:22s} {figures:5d} figure records, {captions:5d} with a caption, {hrefs:5d} with an "
            f"image link, crashed on {crashed} articles"
        )

    best = {name: float("inf") for name in contenders}
    per_article = {name: [float("inf")] * len(paths) for name in contenders}
    for _ in range(args.passes):
        for name, extract in contenders.items():
            seconds = one_pass(extract, paths)
            best[name] = min(best[name], sum(seconds))
            per_article[name] = [min(a, b) for a, b in zip(per_article[name], seconds, strict=True)]
    print(f"\nThroughput, one process, one core (CPU time, best of {args.passes} passes):")
    for name, seconds in best.items():
        print(
            f"  {name:22s} {len(paths) / seconds:8.1f} articles/s  ({seconds * 1e3 / len(paths):.3f} ms/article)"
        )
    ratio = best["pubmed_parser"] / best["medcorpus.parse_jats"]
    print(f"  medcorpus / pubmed_parser articles/s: {ratio:.2f}x")
    print("  by folder (publisher family; each article's best pass):")
    folders: dict[str, list[int]] = {}
    for index, path in enumerate(paths):
        folders.setdefault(Path(path).parent.name, []).append(index)
    for folder, indices in sorted(folders.items(), key=lambda item: -len(item[1])):
        ours = sum(per_article["medcorpus.parse_jats"][i] for i in indices)
        peer = sum(per_article["pubmed_parser"][i] for i in indices)
        print(
            f"    {folder:16s} {len(indices):4d} articles  medcorpus {ours * 1e3 / len(indices):6.3f} ms, "
            f"pubmed_parser {peer * 1e3 / len(indices):6.3f} ms per article: {peer / ours:.2f}x"
        )

    print(
        "\nWhere medcorpus's time goes (ms per article, each stage timed alone; the second includes the first):"
    )
    for name, seconds in where_the_time_goes(paths, args.passes).items():
        print(f"  {name:48s} {seconds * 1e3 / len(paths):.3f}")


if __name__ == "__main__":
    main()
