"""The two taggers medcorpus's concept tagging is measured against, on the same KB and semantic groups.

* `PlainScispacyTagger`: what scispacy gives without medcorpus's additions. No en_core_sci model is
  installed here and a blank pipeline has no noun chunker, so its mentions are the same n-grams as
  `ConceptTagger`'s; each caption is processed on its own (one `CandidateGenerator` call per caption, no
  cache), a span scores as `EntityLinker` scores it (best similarity over the threshold,
  `filter_for_definitions=False`), spans are chosen best score then longest, and `EntityLinker` links
  the chosen `doc.ents`. No variants, no sense rules.
* `MmLiteTagger`: MetaMapLite's exact dictionary look-up (the `mmlite` port), its index built from the
  same MRCONSO/MRSTY files (no POS tagging, no negation detection).

Both return CUIs per caption, for `micro_precision_recall`. They are used by the gold-set tests and by
benchmarks/bench_concepts.py, so the figures compared come from one definition.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from curation.concepts.kb import bundled_rrf_dir
from curation.concepts.tagger import ConceptTagger


class PlainScispacyTagger:
    """scispacy's own pieces with no cache, no cross-caption batching and no extra span rules."""

    def __init__(self, kb_dir: str | Path, threshold: float = 0.8, k: int = 10, max_ngram: int = 5) -> None:
        from scispacy.candidate_generation import CandidateGenerator
        from scispacy.linking import EntityLinker
        from spacy.tokens import Span

        self._span_cls = Span
        # Reused for its tokenizer and n-gram rule only.
        ngram_source = ConceptTagger(kb_dir, model=None, max_ngram=max_ngram)
        self.nlp = ngram_source.nlp
        self._ngrams = ngram_source._ngrams
        self.kb = ngram_source.loaded.kb
        self.semtypes = ngram_source.semtypes or frozenset()
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
        taken: set[int] = set()
        chosen = []
        for *_, span in scored:
            if taken.isdisjoint(range(span.start, span.end)):
                taken.update(range(span.start, span.end))
                chosen.append(self._span_cls(doc, span.start, span.end, label="ENTITY"))
        doc.ents = sorted(chosen, key=lambda s: s.start)
        self.linker(doc)
        return [ent._.kb_ents[0][0] for ent in doc.ents if ent._.kb_ents]


class MmLiteTagger:
    """MetaMapLite (mmlite) over an index built from the bundled RRF files into a temporary directory."""

    def __init__(self, semtypes: frozenset[str], rrf_dir: str | Path | None = None) -> None:
        from mmlite import MetaMapLite
        from mmlite.config import Settings
        from mmlite.index.build import build_index

        self._dir = tempfile.mkdtemp(prefix="mmlite-")
        rrf = Path(rrf_dir) if rrf_dir is not None else bundled_rrf_dir()
        build_index(rrf / "MRCONSO.RRF", rrf / "MRSTY.RRF", Path(self._dir))
        settings = Settings(index_directory=Path(self._dir), enable_postagging=False, detect_negations=False)
        self.mml = MetaMapLite(settings, preload_index=True)
        self.semtypes = set(semtypes)

    def tag(self, text: str) -> list[str]:
        return [cui for e in self.mml.process_text(text, restrict_to_sts=self.semtypes) for cui in e.cuis]
