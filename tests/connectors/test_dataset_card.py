import pickle
from pathlib import Path

import pydicom
import pydicom.data
import pytest

from connectors.dataset_card import (
    CardError,
    DatasetCard,
    label_set_key,
    load_card,
    modality_from_dicom,
    modality_terms,
)
from connectors.fs import FetchError

DEMO_CARD = Path(__file__).parent / "data" / "cards" / "demo.yaml"


def test_demo_card_reads_every_field():
    card = load_card(str(DEMO_CARD))
    assert card.name == "demo-mixed"
    assert (card.modality, card.anatomy) == ("CT", "liver")
    assert card.class_names == ("liver_lesion", "normal", "brain_tumour", "diabetic_retinopathy", "2")
    lesion = card.get("liver_lesion")
    assert lesion.phrase == "liver lesion"
    assert lesion.synonyms == ("hepatic lesion", "liver mass", "focal liver lesion")
    assert card.get("normal").normal and not lesion.normal
    assert card.get("brain_tumour").modality == "MRI"
    assert not card.is_default


def test_card_round_trips_through_its_dict_and_pickle():
    card = load_card(str(DEMO_CARD))
    assert DatasetCard.from_dict(card.to_dict()) == card
    copy = pickle.loads(pickle.dumps(card))  # Beam ships cards to workers
    assert copy == card and copy.get("normal").normal


def test_facts_resolve_class_overrides_and_modality_words():
    card = load_card(str(DEMO_CARD))
    lesion = card.facts(["liver_lesion"])
    assert (lesion.modality, lesion.anatomy, lesion.normal) == ("CT", "liver", False)
    assert {"ct", "computed tomography", "cat scan"} <= set(lesion.modality_terms)  # built in + the card's
    tumour = card.facts(["brain_tumour"])
    assert (tumour.modality, tumour.anatomy) == ("MRI", "brain")
    assert "magnetic resonance" in tumour.modality_terms and "cat scan" not in tumour.modality_terms
    assert card.facts(["normal"]).normal


def test_a_label_without_letters_is_named_by_its_first_synonym():
    grade = load_card(str(DEMO_CARD)).get("2")
    assert grade.phrase == "colon adenocarcinoma"
    assert "2" not in grade.terms


def test_label_set_key_is_order_free_and_facts_keep_card_order():
    card = DatasetCard.default("cxr", ["cardiomegaly", "effusion", "No Finding"], modality="X-ray")
    facts = card.facts(["effusion", "cardiomegaly", "effusion"])
    assert facts.labels == ("cardiomegaly", "effusion")
    assert facts.key == label_set_key(["effusion", "cardiomegaly"]) == "cardiomegaly+effusion"


def test_default_card_from_class_names_and_a_real_dicom_modality():
    ds = pydicom.dcmread(pydicom.data.get_testdata_file("MR_small.dcm"), stop_before_pixels=True)
    card = DatasetCard.default(
        "brains", ["Glioma", "no_tumor", "Normal"], modality=modality_from_dicom(ds.Modality)
    )
    assert card.is_default and card.modality == "MRI" and card.anatomy is None
    assert card.get("Glioma").phrase == "glioma"
    assert card.get("Normal").normal and not card.get("no_tumor").normal
    assert DatasetCard.default("x", ["a"]).facts(["a"]).modality_terms == ()  # unknown modality


def test_dicom_modality_codes():
    assert modality_from_dicom("CT") == "CT"
    assert modality_from_dicom(" dx ") == "X-ray"
    assert modality_from_dicom("OT") is None  # "other" says nothing
    assert modality_from_dicom(None) is None


def test_modality_terms_know_common_synonyms():
    assert "magnetic resonance" in modality_terms("MR")
    assert "radiograph*" in modality_terms("X-ray")
    assert modality_terms("thermography") == ("thermography",)
    assert modality_terms(None) == ()


def test_acronyms_keep_their_case():
    card = DatasetCard.default("covid", ["COVID-19", "Viral_Pneumonia"])
    assert card.get("COVID-19").phrase == "COVID-19"
    assert card.get("Viral_Pneumonia").phrase == "viral pneumonia"


def test_classes_may_be_a_list():
    card = DatasetCard.from_yaml("name: d\nmodality: CT\nclasses: [lesion, normal]\n")
    assert card.class_names == ("lesion", "normal") and card.get("normal").normal


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("name: d\nclasses: [a\n", "not valid YAML"),
        ("- a\n- b\n", "mapping at the top level"),
        ("classes: [a]\n", "`name` is required"),
        ("name: d\n", "`classes`"),
        ("name: d\nclasses: {}\n", "`classes`"),
        ("name: d\nmodalty: CT\nclasses: [a]\n", "unknown keys ['modalty']"),
        ("name: d\nclasses: {a: {synonym: [b]}}\n", "unknown keys ['synonym']"),
        ("name: d\nclasses: {a: {normal: yes please}}\n", "`normal` must be true or false"),
        ("name: d\nclasses: {a: {synonyms: b}}\n", None),  # a single string is accepted
        ("name: d\nclasses: {a: {synonyms: [1]}}\n", "list of non-empty strings"),
        ("name: d\nclasses: [a, a]\n", "twice"),
        ("name: d\nclasses:\n  a: {}\n  a: {normal: true}\n", "duplicate key 'a'"),
        ("name: d\nclasses: ['3']\n", "no words a caption could name it by"),
    ],
)
def test_malformed_cards_raise_card_invalid(text, fragment):
    if fragment is None:
        assert DatasetCard.from_yaml(text).get("a").synonyms == ("b",)
        return
    with pytest.raises(CardError) as info:
        DatasetCard.from_yaml(text)
    assert info.value.reason == "card_invalid"
    assert fragment in info.value.detail


def test_label_sets_the_card_cannot_describe():
    card = load_card(str(DEMO_CARD))
    cases = {
        ("tumour",): "card_unknown_class",
        ("normal", "liver_lesion"): "label_conflict",
        ("liver_lesion", "brain_tumour"): "label_conflict",  # CT liver and MRI brain in one image
        (): "label_conflict",
    }
    for labels, reason in cases.items():
        with pytest.raises(CardError) as info:
            card.facts(labels)
        assert info.value.reason == reason, labels
    assert card.missing_classes(["normal", "tumour", "x", "x"]) == ["tumour", "x"]


def test_load_card_errors(tmp_path):
    with pytest.raises(FetchError) as missing:
        load_card(str(tmp_path / "none.yaml"))
    assert missing.value.reason == "file_missing"
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(CardError) as info:
        load_card(str(bad))
    assert info.value.reason == "card_invalid"
