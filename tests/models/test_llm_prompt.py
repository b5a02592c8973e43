import json
from pathlib import Path

from connectors.dataset_card import DatasetCard, load_card
from models.llm.prompt import CAPTION_JSON_SCHEMA, build_messages

DEMO_CARD = Path(__file__).parents[1] / "connectors" / "data" / "cards" / "demo.yaml"


def user(card, labels):
    messages = build_messages(card.facts(labels))
    assert [m["role"] for m in messages] == ["system", "user"]
    return messages[1]["content"]


def test_prompt_states_the_card_facts():
    card = load_card(str(DEMO_CARD))
    text = user(card, ["brain_tumour"])
    assert "Imaging modality: MRI" in text and "Body part: brain" in text
    assert "brain tumour" in text and "a tumour of the brain" in text and "glioma" in text
    assert "single short sentence" in text


def test_prompt_grounds_in_the_card_only():
    card = load_card(str(DEMO_CARD))
    text = user(card, ["liver_lesion"])
    for other in (
        "brain",
        "retinopathy",
        "adenocarcinoma",
        "demo collection",
    ):  # other classes, the card's description
        assert other not in text
    for forbidden in ("other finding", "severity", "patient details"):
        assert forbidden in text


def test_normal_is_stated_as_such():
    card = DatasetCard.default("cxr", ["Cardiomegaly", "No Finding"], modality="X-ray")
    text = user(card, ["No Finding"])
    assert "The image is normal" in text and "'no finding'" in text
    assert "cardiomegaly" not in text.lower()


def test_multi_label_prompt_lists_every_positive_finding():
    card = DatasetCard.default("cxr", ["Cardiomegaly", "Effusion", "Nodule"], modality="X-ray")
    text = user(card, ["Effusion", "Cardiomegaly"])
    assert "all present in the same image" in text and "every finding" in text
    assert "- cardiomegaly" in text and "- effusion" in text and "nodule" not in text


def test_unknown_modality_is_said_to_be_unknown():
    text = user(DatasetCard.default("d", ["glioma"]), ["glioma"])
    assert "Imaging modality: unknown" in text and "Body part" not in text


def test_schema_is_a_caption_object():
    assert CAPTION_JSON_SCHEMA["required"] == ["caption"]
    json.dumps(CAPTION_JSON_SCHEMA)  # plain JSON: it is sent to servers and hashed into cache keys
