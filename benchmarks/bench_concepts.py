"""Concept tagging speed and quality: medcorpus ConceptTagger against two peers on the same KB.

    .venv/bin/python benchmarks/bench_concepts.py [--captions-file F.jsonl ...] [--cores 1] [--passes 3]

Speed is measured on distinct real captions, each tagged once (no repetition, so no tagger's cache hides
the work): every `{"text": ...}` row of benchmarks/data/*.jsonl (real PMC captions with their source and
licence on each row) and of tests/curation/data/concept_gold_pmc.jsonl (278 real PMC captions from ROCO),
or the files given with --captions-file; duplicates are dropped. The script prints how many distinct
captions and distinct candidate n-grams they hold. Timed runs are pinned to --cores CPUs (default one
core), so captions/s is per core, and measured in CPU time (the process's own, so other work on a shared
machine moves it less than wall time), best of --passes passes. Every pass starts cold: a fresh
medcorpus tagger, a fresh mmlite instance with mmlite's module-level normalization cache cleared, so no
pass reuses what an earlier pass learnt of these captions. The medcorpus and mmlite passes alternate, so
load on the machine falls on both; compare the peers within one run.

Peers (curation/concepts/peers.py), all restricted to the same semantic groups (disorders, anatomy,
procedures, devices, organisms):
* medcorpus: `ConceptTagger` defaults (blank English, n-grams <= 5 words, variant index, scispacy
  candidate generation for the spans that may reach the threshold, sense rules), a fresh tagger.
* scispacy-plain: scispacy's CandidateGenerator + EntityLinker on the same n-grams, caption by caption.
* mmlite: MetaMapLite's exact dictionary look-up, its index built from the same MRCONSO/MRSTY files.
Quality: micro precision/recall on both gold sets (tests/curation/data/concept_gold.jsonl and the real
captions of concept_gold_pmc.jsonl).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from curation.concepts import (
    DEFAULT_SEMTYPE_GROUPS,
    ConceptTagger,
    default_kb_dir,
    micro_precision_recall,
    read_gold,
    resolve_semtypes,
)
from curation.concepts.peers import MmLiteTagger, PlainScispacyTagger

ROOT = Path(__file__).resolve().parent.parent
GOLD_SETS = {
    "old gold": ROOT / "tests" / "curation" / "data" / "concept_gold.jsonl",
    "real PMC gold": ROOT / "tests" / "curation" / "data" / "concept_gold_pmc.jsonl",
}
DEFAULT_CAPTION_FILES = [*sorted((ROOT / "benchmarks" / "data").glob("*.jsonl")), GOLD_SETS["real PMC gold"]]


def read_captions(paths: list[Path]) -> list[str]:
    """The distinct caption texts of JSONL files, in file order."""
    seen: dict[str, None] = {}
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    text = " ".join(json.loads(line)["text"].split())
                    seen.setdefault(text, None)
    return list(seen)


def distinct_ngrams(tagger: ConceptTagger, captions: list[str]) -> int:
    """How many distinct candidate mention texts (the tagger's n-grams) the captions hold."""
    texts = set()
    for doc in tagger.nlp.pipe(captions):
        texts.update(m.lookup for m in tagger._mentions(doc))
    return len(texts)


def timed_pass(fn: Callable[[list[str]], object], captions: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one call."""
    # A full collection of what earlier set-up left (KBs, indexes, the last pass's tagger) would otherwise
    # land inside whichever pass happens to trigger it.
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    fn(captions)
    return time.process_time() - cpu, time.perf_counter() - wall


def report(label: str, n: int, passes: list[tuple[float, float]]) -> float:
    """Print the best pass (by CPU time) and return its captions/s."""
    cpu, wall = min(passes)
    rate = n / cpu
    print(
        f"{label:16s} {n:6d} captions in {cpu:7.2f} s CPU ({wall:.2f} s wall) = {rate:8.1f} captions/s "
        f"(best of {len(passes)}; CPU s per pass: {', '.join(f'{c:.2f}' for c, _ in passes)})"
    )
    return rate


def quality(label: str, tag_all, gold_path: Path) -> None:
    rows = read_gold(gold_path)
    predicted = tag_all([r["text"] for r in rows])
    r = micro_precision_recall([row["cuis"] for row in rows], predicted)
    print(
        f"{label:16s} P={r.precision:.3f} R={r.recall:.3f} F1={r.f1:.3f} "
        f"(tp {r.true_positives}, predicted {r.predicted}, gold {r.gold})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--captions-file", type=Path, action="append", help="JSONL with a text field")
    parser.add_argument("--cores", type=int, default=1, help="CPUs to pin the process to (default 1)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--passes", type=int, default=3, help="timed passes per peer, each from cold")
    args = parser.parse_args()
    import spacy  # noqa: F401  (imported first: it installs its own W036 filter, which ours must follow)

    warnings.filterwarnings("ignore", message=r"\[W036\]")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    print(f"pinned to CPUs {sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}")

    started = time.perf_counter()
    kb_dir = default_kb_dir(cache_dir=tempfile.mkdtemp(prefix="medcorpus-bench-"))
    print(f"bundled KB built in {time.perf_counter() - started:.1f} s: {kb_dir}")
    captions = read_captions(args.captions_file or DEFAULT_CAPTION_FILES)
    words = sum(len(c.split()) for c in captions)
    counter = ConceptTagger(kb_dir, model=None)
    print(
        f"{len(captions)} distinct real captions ({words / max(1, len(captions)):.0f} words each on average), "
        f"{distinct_ngrams(counter, captions)} distinct n-grams"
    )

    semtypes = resolve_semtypes(DEFAULT_SEMTYPE_GROUPS) or frozenset()
    plain = PlainScispacyTagger(kb_dir)

    def ours_all(tagger: ConceptTagger, texts: list[str]) -> list[list[str]]:
        out = []
        for i in range(0, len(texts), args.batch_size):
            out += [[c.cui for c in cs] for cs in tagger.tag_batch(texts[i : i + args.batch_size])]
        return out

    def cold_mmlite() -> MmLiteTagger:
        import mmlite.normalize

        # mmlite memoizes string normalization per process: cleared, so a pass cannot reuse the last one's.
        mmlite.normalize.normalize.cache_clear()
        return MmLiteTagger(semtypes)

    print("\nspeed (each caption once per pass; every pass from cold, CPU time, best pass)")
    ours_passes, mml_passes = [], []
    for _ in range(max(1, args.passes)):
        ours = ConceptTagger(kb_dir, model=None)
        ours_passes.append(timed_pass(lambda t, tagger=ours: ours_all(tagger, t), captions))
        mml = cold_mmlite()
        mml_passes.append(timed_pass(lambda t, tagger=mml: [tagger.tag(x) for x in t], captions))
    rate_ours = report("medcorpus", len(captions), ours_passes)
    print(f"{'':16s} caches (last pass): {ours.cache_stats}")
    # One pass: scispacy-plain has no cache to warm and is several times slower than the others.
    rate_plain = report(
        "scispacy-plain", len(captions), [timed_pass(lambda t: [plain.tag(x) for x in t], captions)]
    )
    rate_mml = report("mmlite", len(captions), mml_passes)
    print(
        f"\nmedcorpus / scispacy-plain = {rate_ours / rate_plain:.1f}x, "
        f"medcorpus / mmlite = {rate_ours / rate_mml:.2f}x"
    )

    for name, path in GOLD_SETS.items():
        print(f"\nquality on the {name} set ({path.name})")
        quality(
            "medcorpus",
            lambda t: [[c.cui for c in cs] for cs in ConceptTagger(kb_dir, model=None).tag_batch(t)],
            path,
        )
        quality("scispacy-plain", lambda t: [plain.tag(x) for x in t], path)
        quality("mmlite", lambda t: [mml.tag(x) for x in t], path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
