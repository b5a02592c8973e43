"""Concept tagging speed and quality: medcorpus ConceptTagger against two peers on the same KB.

    .venv/bin/python benchmarks/bench_concepts.py [--captions 10000] [--cores 1]

Captions: the caption sentences of sample_data/jats/ plus the gold set's captions, repeated and varied
(a "Fig. N." prefix and a "(case M)" suffix with random N, M) up to --captions. Timed runs are pinned to
--cores CPUs (default one core), so captions/s is per core. The bundled sample KB is used throughout.

Peers, all restricted to the same semantic groups (disorders, anatomy, procedures, devices, organisms):
* medcorpus: `ConceptTagger` defaults (blank English, n-grams <= 5 tokens, scispacy linking with a per-text
  cache and one nmslib query batch per batch of captions; word-count and short-acronym rules).
* scispacy-plain: what scispacy gives without those additions. spaCy's noun chunker needs a parser that
  a blank pipeline lacks and no en_core_sci model is installed here, so its mentions are the same
  stop-word-bounded n-grams; each caption is processed on its own (`nlp(text)`, one
  `CandidateGenerator` call per caption, no cache), a span scores as `EntityLinker` scores it (best
  similarity over the threshold, `filter_for_definitions=False`), spans are chosen best score then
  longest, and `EntityLinker` links the chosen `doc.ents`.
* mmlite: MetaMapLite's exact dictionary lookup, its index built from the same MRCONSO/MRSTY files
  (no POS tagging, no negation detection).
Quality: micro precision/recall on tests/curation/data/concept_gold.jsonl (155 captions, 280 CUIs).
"""

from __future__ import annotations

import argparse
import glob
import os
import random
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

from lxml import etree

from curation.concepts import (
    DEFAULT_SEMTYPE_GROUPS,
    ConceptTagger,
    default_kb_dir,
    micro_precision_recall,
    read_gold,
    resolve_semtypes,
)
from curation.concepts.kb import bundled_rrf_dir

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "tests" / "curation" / "data" / "concept_gold.jsonl"


def jats_caption_sentences() -> list[str]:
    parser = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)
    sentences = []
    for path in sorted(glob.glob(str(ROOT / "sample_data" / "jats" / "*ml"))):
        tree = etree.parse(path, parser)
        for caption in tree.xpath(
            "//*[local-name()='fig' or local-name()='table-wrap']/*[local-name()='caption']"
        ):
            text = re.sub(r"DOI: http\S+", "", " ".join("".join(caption.itertext()).split()))
            sentences += [s for s in re.split(r"(?<=[.;])\s+(?=[A-Z(])", text) if len(s) > 25]
    return sentences


def make_captions(n: int, seed: int = 0) -> list[str]:
    base = jats_caption_sentences() + [row["text"] for row in read_gold(GOLD)]
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        text = rng.choice(base)
        if rng.random() < 0.5:
            text = f"Fig. {rng.randint(1, 60)}. {text}"
        if rng.random() < 0.3:
            text = f"{text} (case {rng.randint(1, 500)})"
        out.append(text)
    return out


class PlainScispacy:
    """scispacy's own pieces with no cache, no cross-caption batching and no extra span rules."""

    def __init__(self, kb_dir: Path, threshold: float = 0.8, k: int = 10, max_ngram: int = 5) -> None:
        from scispacy.candidate_generation import CandidateGenerator
        from scispacy.linking import EntityLinker
        from spacy.tokens import Span

        self._span_cls = Span
        ngram_source = ConceptTagger(
            kb_dir, model=None, max_ngram=max_ngram
        )  # reused for its n-gram rule only
        self.nlp = ngram_source.nlp
        self._ngrams = ngram_source._ngrams
        self.kb = ngram_source.loaded.kb
        self.semtypes = ngram_source.semtypes
        aliases, vectorizer, index = ngram_source.loaded.linker_paths.load(ef_search=100)
        self.generator = CandidateGenerator(index, vectorizer, aliases, self.kb)
        self.linker = EntityLinker(
            candidate_generator=self.generator,
            k=k,
            threshold=threshold,
            filter_for_definitions=False,
            max_entities_per_mention=1,
        )
        self.threshold, self.k = threshold, k

    def tag(self, text: str) -> list[str]:
        doc = self.nlp(text)
        spans = [doc[start:end] for start, end, _, _ in self._ngrams(doc)]
        scored = []
        for span, candidates in zip(spans, self.generator([s.text for s in spans], self.k), strict=True):
            wanted = [
                max(c.similarities)
                for c in candidates
                if any(t in self.semtypes for t in self.kb.cui_to_entity[c.concept_id].types)
            ]
            best = max(wanted, default=0.0)
            if best > self.threshold:
                scored.append((round(best, 4), span.end - span.start, -span.start, span))
        scored.sort(key=lambda s: s[:3], reverse=True)
        taken, chosen = set(), []
        for *_, span in scored:
            if taken.isdisjoint(range(span.start, span.end)):
                taken.update(range(span.start, span.end))
                chosen.append(self._span_cls(doc, span.start, span.end, label="ENTITY"))
        doc.ents = sorted(chosen, key=lambda s: s.start)
        self.linker(doc)
        return [ent._.kb_ents[0][0] for ent in doc.ents if ent._.kb_ents]


class MmLite:
    def __init__(self, semtypes: frozenset[str]) -> None:
        from mmlite import MetaMapLite
        from mmlite.config import Settings
        from mmlite.index.build import build_index

        self._dir = tempfile.mkdtemp(prefix="mmlite-")
        rrf = bundled_rrf_dir()
        build_index(rrf / "MRCONSO.RRF", rrf / "MRSTY.RRF", Path(self._dir))
        settings = Settings(index_directory=Path(self._dir), enable_postagging=False, detect_negations=False)
        self.mml = MetaMapLite(settings, preload_index=True)
        self.semtypes = set(semtypes)

    def tag(self, text: str) -> list[str]:
        return [cui for e in self.mml.process_text(text, restrict_to_sts=self.semtypes) for cui in e.cuis]


def timed(label: str, fn, captions: list[str]) -> float:
    started = time.perf_counter()
    fn(captions)
    elapsed = time.perf_counter() - started
    rate = len(captions) / elapsed
    print(f"{label:16s} {len(captions):6d} captions in {elapsed:7.2f} s = {rate:8.1f} captions/s")
    return rate


def quality(label: str, tag_all) -> None:
    rows = read_gold(GOLD)
    predicted = tag_all([r["text"] for r in rows])
    r = micro_precision_recall([row["cuis"] for row in rows], predicted)
    print(
        f"{label:16s} P={r.precision:.3f} R={r.recall:.3f} F1={r.f1:.3f} (tp {r.true_positives}, predicted {r.predicted}, gold {r.gold})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--captions", type=int, default=10_000)
    parser.add_argument("--cores", type=int, default=1, help="CPUs to pin the process to (default 1)")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=r"\[W036\]")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    print(f"pinned to CPUs {sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}")

    started = time.perf_counter()
    kb_dir = default_kb_dir(cache_dir=tempfile.mkdtemp(prefix="medcorpus-bench-"))
    print(f"bundled KB built in {time.perf_counter() - started:.1f} s: {kb_dir}")
    captions = make_captions(args.captions)
    print(f"{len(captions)} captions, {len(set(captions))} distinct")

    semtypes = resolve_semtypes(DEFAULT_SEMTYPE_GROUPS)
    ours = ConceptTagger(kb_dir, model=None)
    plain = PlainScispacy(kb_dir)
    mml = MmLite(semtypes)

    def ours_all(texts: list[str]) -> list[list[str]]:
        out = []
        for i in range(0, len(texts), args.batch_size):
            out += [[c.cui for c in cs] for cs in ours.tag_batch(texts[i : i + args.batch_size])]
        return out

    print("\nspeed (cold cache for medcorpus: a fresh tagger)")
    rate_ours = timed("medcorpus", ours_all, captions)
    print(f"{'':16s} linker cache: {ours.cache_stats}")
    rate_plain = timed("scispacy-plain", lambda t: [plain.tag(x) for x in t], captions)
    rate_mml = timed("mmlite", lambda t: [mml.tag(x) for x in t], captions)
    print(
        f"\nmedcorpus / scispacy-plain = {rate_ours / rate_plain:.1f}x, medcorpus / mmlite = {rate_ours / rate_mml:.2f}x"
    )

    print("\ngold-set quality")
    quality(
        "medcorpus", lambda t: [[c.cui for c in cs] for cs in ConceptTagger(kb_dir, model=None).tag_batch(t)]
    )
    quality("scispacy-plain", lambda t: [plain.tag(x) for x in t])
    quality("mmlite", lambda t: [mml.tag(x) for x in t])
    return 0


if __name__ == "__main__":
    sys.exit(main())
