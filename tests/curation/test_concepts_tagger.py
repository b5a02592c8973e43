"""ConceptTagger on the bundled KB: variants, abbreviations, filters, thresholds, spans."""

from __future__ import annotations

import pytest

from curation.concepts import ConceptTagger
from schemas import Concept


def cuis(concepts: list[Concept]) -> list[str]:
    return [c.cui for c in concepts]


def test_typical_caption(tagger):
    text = "CT scan of the abdomen showing a liver lesion."
    concepts = tagger.tag(text)
    assert cuis(concepts) == ["C0040405", "C0000726", "C0023884", "C0221198"]
    assert [text[c.start : c.end] for c in concepts] == ["CT scan", "abdomen", "liver", "lesion"]
    ct = concepts[0]
    assert (
        ct.name == "X-Ray Computed Tomography" and ct.semtypes == ["T060"] and ct.score == pytest.approx(1.0)
    )


def test_plural_word_order_and_abbreviation(tagger):
    # "calculi" appears only as "Kidney Calculi" / "Renal calculi"; "tomography computed" reverses the alias
    text = "Tomography computed of both kidneys shows renal calculi; the CT also shows hydrocephaly."
    found = {text[c.start : c.end]: c.cui for c in tagger.tag(text)}
    assert found["Tomography computed"] == "C0040405"
    assert found["kidneys"] == "C0022646"
    assert found["renal calculi"] == "C0022650"
    assert found["CT"] == "C0040405"
    assert found["hydrocephaly"] == "C0020255"


def test_fuzzy_variant_not_in_the_kb(tagger):
    # "glioblastomas" is no alias: 3-gram similarity links it
    [concept] = tagger.tag("Axial images of glioblastomas.")
    assert concept.cui == "C0017636" and 0.8 < concept.score < 1.0


def test_abbreviation_defined_in_the_caption(tagger):
    # "KS" is no alias: scispacy's AbbreviationDetector links it through its long form
    text = "Kidney stones (KS) on ultrasound; KS were bilateral."
    concepts = tagger.tag(text)
    short = [c for c in concepts if text[c.start : c.end] == "KS"]
    assert len(short) == 2 and {c.cui for c in short} == {"C0022650"}


def test_short_mentions_must_match_an_alias_exactly(tagger):
    assert cuis(tagger.tag("Ultrasound images were sent to us.")) == ["C0041618"]
    assert cuis(tagger.tag("A ct of the head")) == ["C0018670"]  # "ct" is not the acronym CT


def test_unknown_three_grams_keep_mentions_honest(tagger):
    # with an alias-only vocabulary "liver shows no" embeds exactly like "liver"
    text = "The liver shows no lesion."
    spans = [text[c.start : c.end] for c in tagger.tag(text)]
    assert spans == ["liver", "lesion"]


def test_spans_sorted_and_matching(tagger):
    text = (
        "Optical coherence tomography (OCT) of the retina in age-related macular degeneration; OCT repeated."
    )
    concepts = tagger.tag(text)
    assert [c.start for c in concepts] == sorted(c.start for c in concepts)
    assert [(text[c.start : c.end], c.cui) for c in concepts] == [
        ("Optical coherence tomography", "C0920367"),
        ("OCT", "C0920367"),
        ("retina", "C0035298"),
        ("age-related macular degeneration", "C0242383"),
        ("OCT", "C0920367"),
    ]


def test_semtype_filters(sample_kb_dir, tagger):
    text = "Gadolinium-enhanced MRI of E. coli infection in the liver."
    assert cuis(tagger.tag(text)) == ["C0024485", "C0014834", "C0009450", "C0023884"]
    no_organisms = ConceptTagger(sample_kb_dir, model=None, exclude_semtypes=["organisms"])
    assert cuis(no_organisms.tag(text)) == ["C0024485", "C0009450", "C0023884"]
    chemicals = ConceptTagger(sample_kb_dir, model=None, semtypes=["chemicals"])
    assert cuis(chemicals.tag(text)) == ["C0016911"]
    anatomy = ConceptTagger(sample_kb_dir, model=None, semtypes=["T023"])
    assert cuis(anatomy.tag(text)) == ["C0023884"]
    everything = ConceptTagger(sample_kb_dir, model=None, semtypes=None)
    assert "C0016911" in cuis(everything.tag(text))


def test_threshold(sample_kb_dir):
    # "osteoporotic" is no alias nor variant: it links by 3-gram similarity alone, at about 0.75
    text = "Lateral radiograph of an osteoporotic spine."
    loose = ConceptTagger(sample_kb_dir, model=None, threshold=0.7, word_dice=0.6)
    strict = ConceptTagger(sample_kb_dir, model=None, threshold=0.8)
    osteoporosis = [c for c in loose.tag(text) if c.cui == "C0029456"]
    assert len(osteoporosis) == 1 and 0.7 < osteoporosis[0].score < 0.8
    assert "C0029456" not in cuis(strict.tag(text))


def test_batch_matches_single_and_bad_inputs(tagger):
    texts = ["MRI of the brain showing a glioma.", "", None, "Chest X-ray showing cardiomegaly."]
    batch = tagger.tag_batch(texts)
    assert batch[1] == [] and batch[2] == []
    assert batch[0] == tagger.tag(texts[0]) and batch[3] == tagger.tag(texts[3])
    assert cuis(batch[3]) == ["C0039985", "C0018800"]


def test_identity_and_cache(tagger):
    identity = tagger.kb_identity
    assert identity["name"] == "medcorpus-umls-sample" and identity["concepts"] >= 300
    assert identity["version"].startswith("medcorpus-sample-1+")
    tagger.tag("Histopathology of a melanoma.")
    hits = tagger.cache_stats["hits"]
    tagger.tag("Histopathology of a melanoma.")
    assert tagger.cache_stats["hits"] > hits


def test_constructor_arguments(sample_kb_dir):
    with pytest.raises(ValueError):
        ConceptTagger()
