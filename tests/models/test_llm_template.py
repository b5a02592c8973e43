from pathlib import Path

import pytest

from connectors.dataset_card import DatasetCard, load_card
from curation.caption_filters import CaptionCandidate, filter_captions
from models.captions import caption_context
from models.llm import BackendConfig, build_backend
from models.llm.base import CaptionRequest
from models.llm.template import FINDING_TEMPLATES, TemplateBackend, plain_caption, template_captions

DEMO_CARD = Path(__file__).parents[1] / "connectors" / "data" / "cards" / "demo.yaml"
CXR = DatasetCard.default("cxr", ["Cardiomegaly", "Pleural_Effusion", "No Finding"], modality="X-ray")


def test_plain_caption_reads_like_the_issue_example():
    card = DatasetCard.from_yaml(
        "name: c\nmodality: X-ray\nanatomy: chest\nclasses: [cardiomegaly, normal]\n"
    )
    assert plain_caption(card.facts(["cardiomegaly"])) == "Chest X-ray showing cardiomegaly."
    assert plain_caption(card.facts(["normal"])) == "Normal chest X-ray."


def test_multi_label_captions_compose_the_positive_findings_only():
    captions = template_captions(CXR.facts(["Pleural_Effusion", "Cardiomegaly"]))
    assert captions[0] == "X-ray showing cardiomegaly and pleural effusion."
    assert all("cardiomegaly" in c.lower() and "pleural effusion" in c.lower() for c in captions)
    assert not any("finding" in c.lower() for c in captions)
    three = DatasetCard.default("d", ["a1", "b1", "c1"], "CT").facts(["a1", "b1", "c1"])
    assert plain_caption(three) == "CT showing a1, b1 and c1."


def test_unknown_modality_says_image():
    card = DatasetCard.default("d", ["glioma"])
    assert plain_caption(card.facts(["glioma"])) == "Image showing glioma."


def test_template_captions_are_distinct_deterministic_and_capped():
    facts = load_card(str(DEMO_CARD)).facts(["liver_lesion"])
    all_captions = template_captions(facts)
    assert len(all_captions) == len(set(all_captions)) == len(FINDING_TEMPLATES)
    no_anatomy = template_captions(CXR.facts(["Cardiomegaly"]))
    assert len(no_anatomy) == len(set(no_anatomy)) >= 10  # some templates coincide without an anatomy
    assert template_captions(facts, 3) == all_captions[:3]
    assert template_captions(facts) == all_captions


@pytest.mark.parametrize(
    "labels", [["liver_lesion"], ["normal"], ["brain_tumour"], ["diabetic_retinopathy"], ["2"]]
)
def test_every_template_caption_of_the_demo_card_passes_the_content_filters(labels):
    """Template captions must not need the filters' mercy: only near-duplicates may be dropped."""
    card = load_card(str(DEMO_CARD))
    facts = card.facts(labels)
    verdicts = filter_captions(
        [CaptionCandidate(c) for c in template_captions(facts)], caption_context(card, facts)
    )
    assert {v.reason for v in verdicts} <= {None, "caption_duplicate"}, [v for v in verdicts if not v.keep]
    assert verdicts[0].keep


def test_template_backend_interface():
    backend = build_backend(BackendConfig(kind="template"))
    assert isinstance(backend, TemplateBackend)
    requests = [
        CaptionRequest(CXR.facts(["No Finding"]), n=4),
        CaptionRequest(CXR.facts(["Cardiomegaly"]), n=2),
    ]
    results = backend.generate(requests)
    assert [r.request for r in results] == requests
    assert [len(r.candidates) for r in results] == [4, 2]
    assert results[0].candidates[0].text == "Normal X-ray."
    assert all(r.text_model == "template" and r.error is None for r in results)
    assert backend.cache_identity(requests[0]) is None
    backend.close()


def test_unknown_backend_and_missing_options_are_refused():
    with pytest.raises(ValueError, match="unknown caption backend"):
        build_backend(BackendConfig(kind="gpt"))
    with pytest.raises(ValueError, match="base_url and model"):
        build_backend(BackendConfig(kind="openai", model="m"))
    with pytest.raises(ValueError, match="needs a model"):
        build_backend(BackendConfig(kind="vllm"))
