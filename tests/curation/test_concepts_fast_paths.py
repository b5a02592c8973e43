"""The tagger's shortcuts give what the full computation gives.

Speed on distinct captions comes from three shortcuts (tagger.py): the n-gram filter (only spans that may
link are linked), the exact search over a small KB's aliases instead of the HNSW index, and the
abbreviation detector run only on captions with a parenthesis. Each is checked here against the long way
on the real captions of both gold sets, so a later change to the linking rules cannot silently make a
shortcut drop a concept.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.concepts import ConceptTagger
from curation.concepts.variants import normalize

DATA = Path(__file__).parent / "data"

# Texts whose tokens are glued by word characters, where per-token forms differ from the span's.
GLUED = [
    "The patient's chest X-ray and the patients' CT scans.",
    "Dose 10mg of contrast; CD34+ cells; 3D-CT of the liver’s lesion.",
    "Kidney stones (KS) on ultrasound; KS were bilateral (n = 3).",
    "Non-small cell lung cancer (NSCLC) in the left lung; x-ray/CT follow-up.",
]


@pytest.fixture(scope="module")
def captions() -> list[str]:
    texts = list(GLUED)
    for name in ("concept_gold.jsonl", "concept_gold_pmc.jsonl"):
        with open(DATA / name, encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for line in fh if line.strip()]
    return texts


def test_ngram_filter_keeps_every_span_that_links(sample_kb_dir, captions):
    tagger = ConceptTagger(sample_kb_dir, model=None)
    kept_total = all_total = 0
    for text in captions:
        doc = tagger._tokenize(text)
        tokens = tagger._tokens(doc, text)
        tagger._learn_token_forms(tokens.words)
        kept = {(m.start, m.end, m.lookup) for m in tagger._linkable_mentions(doc, tokens)}
        every = tagger._mentions(doc)
        kept_total, all_total = kept_total + len(kept), all_total + len(every)
        assert kept <= {(m.start, m.end, m.lookup) for m in every}
        for m in every:
            if (m.start, m.end, m.lookup) not in kept:
                assert tagger._compute_best_link(m.text, m.lookup) is None, (text, m.text)
    assert kept_total < all_total / 3  # the filter is what saves the work


def test_tokens_rebuild_the_caption_and_its_keys(tagger, captions):
    for text in captions:
        doc = tagger._tokenize(text)
        tokens = tagger._tokens(doc, text)
        assert tokens.words == [t.text for t in doc]
        assert tokens.space == [bool(t.whitespace_) for t in doc]
        assert tokens.starts == [t.idx for t in doc]
        tagger._learn_token_forms(tokens.words)
        for word in tokens.words:
            assert tagger._token_forms[word].key == normalize(word)


def test_abbreviation_detector_only_where_it_can_match(tagger, captions):
    for text in captions:
        full = tagger.nlp(text)
        ours = tagger._tokenize(text)
        assert sorted((a.start, a.end, a._.long_form.text) for a in ours._.abbreviations) == sorted(
            (a.start, a.end, a._.long_form.text) for a in full._.abbreviations
        )


def test_exact_alias_search_matches_the_index(sample_kb_dir, captions):
    tagger = ConceptTagger(sample_kb_dir, model=None)
    exact = tagger.candidate_generator
    assert exact.alias_vectors is not None  # the bundled KB is small enough to search exactly
    indexed = ConceptTagger(sample_kb_dir, model=None).candidate_generator
    indexed.alias_vectors = None
    mentions = sorted(
        {m.text for text in captions[:120] for m in tagger._mentions(tagger._tokenize(text))}
        | {"", "%%", "glioblastomas", "computerized tomography scan"}
    )
    for text, ours, theirs in zip(mentions, exact(mentions, 10), indexed(mentions, 10), strict=True):
        ours_by_cui = {c.concept_id: max(c.similarities) for c in ours}
        theirs_by_cui = {c.concept_id: max(c.similarities) for c in theirs}
        # Every candidate that can pass a threshold is found by both, with the same similarity.
        for by_cui, other in ((ours_by_cui, theirs_by_cui), (theirs_by_cui, ours_by_cui)):
            for cui, sim in by_cui.items():
                if sim > 0.5:
                    assert other.get(cui) == pytest.approx(sim, abs=1e-5), (text, cui)


def test_batches_and_single_captions_agree(sample_kb_dir, captions):
    batch = ConceptTagger(sample_kb_dir, model=None).tag_batch(captions)
    one_by_one = ConceptTagger(sample_kb_dir, model=None)
    assert [one_by_one.tag(text) for text in captions] == batch
