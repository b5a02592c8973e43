"""K captions per label set, filtering and the join back to images. LLM output is scripted here by a
small backend (an LLM cannot run in the main environment); the real vLLM path runs in .venv-llm
(test_llm_vllm.py)."""

import json
from pathlib import Path

import pytest

from connectors.dataset_card import DatasetCard, label_set_key, load_card
from curation.caption_filters import CaptionCandidate
from models.captions import CaptionError, CaptionGenerator, attach_captions, plan_requests
from models.llm import BackendConfig, build_backend
from models.llm.base import CaptionResult
from schemas.records import PairRecord, rejects_to_table

DEMO_CARD = Path(__file__).parents[1] / "connectors" / "data" / "cards" / "demo.yaml"
CXR = DatasetCard.from_yaml(
    """
name: cxr
modality: X-ray
anatomy: chest
classes:
  Cardiomegaly: {synonyms: [enlarged heart]}
  Effusion: {synonyms: [pleural effusion]}
  No Finding: {}
"""
)


class ScriptedLLM:
    """Returns the given raw outputs for every request (JSON-wrapped unless they start with "!")."""

    name = "scripted"
    text_model = "vllm:scripted"

    def __init__(self, outputs, error=None):
        self.outputs, self.error, self.asked = outputs, error, []

    def generate(self, requests):
        self.asked += [r.n for r in requests]
        if self.error:
            return [CaptionResult(r, text_model=self.text_model, error=self.error) for r in requests]
        out = []
        for r in requests:
            candidates = []
            for text in self.outputs[: r.n]:
                if text.startswith("!"):
                    candidates.append(CaptionCandidate(text[1:], "length", True))
                else:
                    candidates.append(CaptionCandidate(json.dumps({"caption": text}), "stop", True))
            out.append(CaptionResult(r, candidates, self.text_model))
        return out

    def cache_identity(self, request):
        return None

    def close(self):
        self.closed = True


def record(labels, sample="s1"):
    return PairRecord(
        id=f"cls/cxr/{sample}",
        source="classification",
        kind="image",
        image_bytes=b"png",
        image_sha256="0" * 64,
        width=1,
        height=1,
        caption="",
        class_labels=list(labels),
        dataset="cxr",
    )


def test_plan_makes_one_request_per_label_set_present():
    samples = [
        ["Cardiomegaly"],
        ["Effusion", "Cardiomegaly"],
        ["Cardiomegaly"],
        ["Cardiomegaly", "Effusion"],
        ["Nope"],
        [],
    ]
    plan = plan_requests(CXR, samples, k=6)
    assert [r.facts.key for r in plan.requests] == ["Cardiomegaly", "Cardiomegaly+Effusion"]
    assert [r.n for r in plan.requests] == [6, 6]
    assert {k: e.reason for k, e in plan.errors.items()} == {
        "Nope": "card_unknown_class",
        "": "label_conflict",
    }


def test_llm_captions_are_filtered_with_reasons_and_the_template_caption_kept():
    outputs = [
        "Frontal chest radiograph showing an enlarged heart.",
        "As an AI language model I cannot see images.",
        "!Chest X-ray showing cardiomeg",
        "Chest X-ray showing cardiomegaly.",  # the template caption again
        "Chest X-ray showing cardiomegaly and pleural effusion.",
        "Chest X-ray without cardiomegaly.",
        "Cardiomegaly on a chest X-ray of a patient.",
        "Cardiomegaly on a chest X-ray of a patient!",
        "Heart.",
        "Cardiomegaly seen on PA chest radiograph.",
    ]
    llm = ScriptedLLM(outputs)
    generator = CaptionGenerator(llm, [CXR])
    [result] = generator.run(plan_requests(CXR, [["Cardiomegaly"]], k=10).requests)
    assert llm.asked == [9]  # the template caption is one of the K
    assert result.captions == [
        "Chest X-ray showing cardiomegaly.",
        "Frontal chest radiograph showing an enlarged heart.",
        "Cardiomegaly on a chest X-ray of a patient.",
    ]
    assert result.caption_models == ["template", "vllm:scripted", "vllm:scripted"]
    assert [(r.index, r.reason) for r in result.rejected] == [
        (2, "caption_junk"),
        (3, "caption_truncated"),
        (4, "caption_duplicate"),
        (5, "caption_other_class"),
        (6, "caption_negation"),
        (8, "caption_duplicate"),
        (9, "caption_too_short"),
    ]
    rows = result.reject_records()
    assert rows[0].id == "cls/cxr/labels/Cardiomegaly/2" and rows[0].stage == "captions"
    assert "As an AI" in rows[0].detail
    assert rejects_to_table(rows).num_rows == 7  # the canonical reject schema takes them
    generator.close()
    assert llm.closed


def test_a_failed_llm_call_keeps_the_template_caption_and_reports_the_error():
    generator = CaptionGenerator(
        ScriptedLLM([], error="caption_llm_error: APIConnectionError: refused"), [CXR]
    )
    [result] = generator.run(plan_requests(CXR, [["Effusion"]]).requests)
    assert result.captions == ["Chest X-ray showing effusion."]
    assert [(r.reason, r.detail) for r in result.rejected] == [
        ("caption_llm_error", "APIConnectionError: refused")
    ]


def test_template_backend_makes_all_k_and_they_survive_the_filters():
    generator = CaptionGenerator(build_backend(BackendConfig(kind="template")), [load_card(str(DEMO_CARD))])
    card = load_card(str(DEMO_CARD))
    results = generator.run(plan_requests(card, [["liver_lesion"], ["normal"]], k=10).requests)
    assert [len(r.captions) for r in results] == [10, 10]
    assert results[0].captions[0] == "Liver CT showing liver lesion."
    assert results[1].captions[0] == "Normal liver CT."
    assert all(m == "template" for r in results for m in r.caption_models)


def test_multi_label_captions_name_every_positive_label():
    llm = ScriptedLLM(
        ["Chest X-ray showing cardiomegaly.", "Chest radiograph showing cardiomegaly and pleural effusion."]
    )
    [result] = CaptionGenerator(llm, [CXR]).run(
        plan_requests(CXR, [["Effusion", "Cardiomegaly"]], k=3).requests
    )
    assert result.captions == [
        "Chest X-ray showing cardiomegaly and effusion.",
        "Chest radiograph showing cardiomegaly and pleural effusion.",
    ]
    assert [r.reason for r in result.rejected] == ["caption_missing_label"]


def test_attach_as_a_list_or_as_one_record_per_caption():
    llm = ScriptedLLM(["Frontal chest radiograph showing an enlarged heart.", "As an AI..."])
    [captions] = CaptionGenerator(llm, [CXR]).run(plan_requests(CXR, [["Cardiomegaly"]], k=3).requests)
    sample = record(["Cardiomegaly"])
    assert captions.key == label_set_key(sample.class_labels)  # the join key

    [listed] = attach_captions(sample, captions, "list")
    assert listed.id == "cls/cxr/s1" and listed.caption == "Chest X-ray showing cardiomegaly."
    assert listed.captions == captions.captions and listed.text_model == "vllm:scripted"
    assert sample.caption == "" and sample.captions == []  # the input record is not changed

    split = attach_captions(sample, captions, "records")
    assert [r.id for r in split] == ["cls/cxr/s1/0", "cls/cxr/s1/1"]
    assert [r.text_model for r in split] == ["template", "vllm:scripted"]
    assert [r.captions for r in split] == [[c] for c in captions.captions]
    with pytest.raises(ValueError, match="unknown caption mode"):
        attach_captions(sample, captions, "rows")


def test_text_model_is_template_when_no_llm_caption_survived():
    [captions] = CaptionGenerator(ScriptedLLM(["Heart."]), [CXR]).run(
        plan_requests(CXR, [["Cardiomegaly"]], k=2).requests
    )
    [listed] = attach_captions(record(["Cardiomegaly"]), captions)
    assert listed.text_model == "template"


def test_no_surviving_caption_is_a_caption_none_error():
    bare = DatasetCard.default("d", ["lesion"], modality="CT")
    generator = CaptionGenerator(ScriptedLLM(["Heart."]), [bare], keep_template=False)
    [captions] = generator.run(plan_requests(bare, [["lesion"]], k=1).requests)
    with pytest.raises(CaptionError) as info:
        attach_captions(record(["lesion"]), captions)
    assert info.value.reason == "caption_none" and "caption_too_short" in info.value.detail


def test_k_of_one_asks_the_llm_for_nothing():
    llm = ScriptedLLM(["Chest radiograph showing an enlarged heart."])
    [result] = CaptionGenerator(llm, [CXR]).run(plan_requests(CXR, [["Cardiomegaly"]], k=1).requests)
    assert llm.asked == [] and result.captions == ["Chest X-ray showing cardiomegaly."]
