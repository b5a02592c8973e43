import json

import pytest

from curation.caption_filters import (
    CaptionCandidate,
    CaptionContext,
    CaptionLimits,
    filter_captions,
)

# A chest X-ray dataset: cardiomegaly (synonym "enlarged heart"), pleural effusion, and a normal class.
XRAY = ("x ray", "xray", "radiograph*", "cxr")
CARDIOMEGALY = CaptionContext(
    label_terms=(("cardiomegaly", "enlarged heart"),),
    modality_terms=XRAY,
    other_class_terms=("pleural effusion", "no finding"),
)
NORMAL = CaptionContext(
    label_terms=(("no finding",),),
    modality_terms=XRAY,
    other_class_terms=("cardiomegaly", "enlarged heart", "pleural effusion"),
    normal=True,
)
BOTH = CaptionContext(
    label_terms=(("cardiomegaly",), ("pleural effusion",)),
    modality_terms=XRAY,
    other_class_terms=("no finding",),
)


def verdict(text, ctx=CARDIOMEGALY, **candidate):
    [v] = filter_captions([CaptionCandidate(text, **candidate)], ctx)
    return v


def reason(text, ctx=CARDIOMEGALY, **candidate):
    return verdict(text, ctx, **candidate).reason


@pytest.mark.parametrize(
    "text",
    [
        "Chest X-ray showing cardiomegaly.",
        "Chest radiograph with an enlarged heart.",
        "Cardiomegaly on a frontal chest radiograph.",
        "Posteroanterior CXR demonstrating cardiomegaly.",
    ],
)
def test_good_captions_are_kept(text):
    v = verdict(text)
    assert v.keep, v
    assert v.text == text


def test_generation_stopped_by_the_token_limit_is_rejected_not_truncated():
    v = verdict("Chest X-ray showing cardiomegaly and", finish_reason="length")
    assert (v.reason, v.text) == ("caption_truncated", "Chest X-ray showing cardiomegaly and")


def test_json_output_is_parsed_and_bad_json_rejected():
    good = verdict(json.dumps({"caption": " Chest X-ray showing cardiomegaly. "}), json=True)
    assert good.keep and good.text == "Chest X-ray showing cardiomegaly."
    assert reason('{"caption": "Chest X-ray', json=True) == "caption_invalid_json"
    assert reason('{"text": "Chest X-ray showing cardiomegaly."}', json=True) == "caption_invalid_json"
    assert reason('["Chest X-ray showing cardiomegaly."]', json=True) == "caption_invalid_json"


@pytest.mark.parametrize(
    "text",
    [
        "As an AI, I cannot see the image, but this chest X-ray shows cardiomegaly.",
        "I'm glad to help! Chest X-ray showing cardiomegaly.",
        "Sure, chest X-ray showing cardiomegaly.",
        "Here is a caption: chest X-ray showing cardiomegaly.",
        "**Chest X-ray** showing cardiomegaly.",
        '{"caption": "Chest X-ray showing cardiomegaly."}',  # JSON where plain text was asked for
        "A single short sentence: Imaging modality: X-ray (chest) with cardiomegaly.",  # the prompt echoed
        "The modality: X-ray for cardiomegaly.",
        "Summary of the imaging modality and body part: chest X-ray with cardiomegaly.",
    ],
)
def test_conversational_junk_is_rejected(text):
    assert reason(text) == "caption_junk"


def test_length_bounds():
    assert reason("Cardiomegaly, X-ray.") == "caption_too_short"
    long = "Chest X-ray showing cardiomegaly " + "with a clearly visible cardiac silhouette " * 8
    assert reason(long) == "caption_too_long"
    assert reason("Chest X-ray. It shows cardiomegaly.") == "caption_too_long"
    two = filter_captions(
        [CaptionCandidate("Chest X-ray. It shows cardiomegaly.")],
        CARDIOMEGALY,
        CaptionLimits(max_sentences=2),
    )
    assert two[0].keep
    strict = filter_captions(
        [CaptionCandidate("Chest X-ray showing cardiomegaly.")], CARDIOMEGALY, CaptionLimits(max_words=3)
    )
    assert strict[0].reason == "caption_too_long"


@pytest.mark.parametrize(
    "text",
    [
        "Chest X-ray showing severe cardiomegaly.",
        "Chest X-ray of a 45-year-old man showing cardiomegaly.",
        "Chest radiograph of a female patient with cardiomegaly.",
        "Chest X-ray showing mild cardiomegaly.",
    ],
)
def test_severity_and_patient_details_are_rejected(text):
    assert reason(text) == "caption_extra_detail"


def test_severity_inside_the_label_is_allowed():
    grading = CaptionContext(label_terms=(("severe diabetic retinopathy",),), modality_terms=("fundus",))
    assert verdict("Fundus photograph showing severe diabetic retinopathy.", grading).keep
    assert (
        reason("Fundus photograph of an elderly patient with severe diabetic retinopathy.", grading)
        == "caption_extra_detail"
    )


def test_the_label_or_a_synonym_must_appear():
    assert reason("Chest X-ray showing a large heart shadow.") == "caption_missing_label"
    # Every positive label of a multi-label sample must be named.
    assert reason("Chest X-ray showing cardiomegaly.", BOTH) == "caption_missing_label"
    assert verdict("Chest X-ray showing cardiomegaly and pleural effusion.", BOTH).keep


def test_the_modality_must_appear_when_known():
    assert reason("Image of the chest showing cardiomegaly.") == "caption_missing_modality"
    unknown = CaptionContext(label_terms=(("cardiomegaly",),))
    assert verdict("Image of the chest showing cardiomegaly.", unknown).keep


def test_prefix_terms_match_word_endings():
    ctx = CaptionContext(label_terms=(("mass",),), modality_terms=("mammogra*",))
    assert verdict("Screening mammography showing a mass.", ctx).keep
    assert verdict("Mammogram with masses.", ctx).keep  # plural of the label
    assert reason("Breast ultrasound showing a mass.", ctx) == "caption_missing_modality"


def test_no_other_class_of_the_dataset_may_appear():
    assert reason("Chest X-ray showing cardiomegaly and pleural effusion.") == "caption_other_class"
    assert reason("Normal chest X-ray showing cardiomegaly.", NORMAL) == "caption_other_class"


def test_a_class_inside_the_label_is_not_another_class_but_one_containing_it_is():
    effusion_classes = {"effusion": ("effusion",), "pleural effusion": ("pleural effusion",)}
    own_long = CaptionContext(
        label_terms=(effusion_classes["pleural effusion"],),
        modality_terms=XRAY,
        other_class_terms=effusion_classes["effusion"],
    )
    assert verdict("Chest X-ray showing pleural effusion.", own_long).keep
    own_short = CaptionContext(
        label_terms=(effusion_classes["effusion"],),
        modality_terms=XRAY,
        other_class_terms=effusion_classes["pleural effusion"],
    )
    assert reason("Chest X-ray showing pleural effusion.", own_short) == "caption_other_class"


@pytest.mark.parametrize(
    "text",
    [
        "Chest X-ray with no cardiomegaly.",
        "Chest X-ray without evidence of cardiomegaly.",
        "Chest X-ray negative for cardiomegaly.",
        "Normal chest X-ray, cardiomegaly.",  # a finding called normal
        "Unremarkable chest radiograph with cardiomegaly.",
    ],
)
def test_a_finding_is_never_negated_or_called_normal(text):
    assert reason(text) == "caption_negation"


def test_pseudo_negations_and_other_clauses_do_not_negate_the_finding():
    ct = CaptionContext(label_terms=(("liver lesion",),), modality_terms=("ct", "computed tomography"))
    assert verdict("CT without contrast showing a liver lesion.", ct).keep
    assert verdict("No artefacts; CT of the abdomen showing a liver lesion.", ct).keep


@pytest.mark.parametrize(
    "text",
    [
        "Normal chest X-ray.",
        "Chest X-ray with no abnormality.",
        "Chest radiograph with no finding.",
        "Normal chest X-ray with no mass or lesion.",
    ],
)
def test_normal_class_accepts_normality_wording(text):
    v = verdict(text, NORMAL)
    assert v.keep, v


@pytest.mark.parametrize(
    "text",
    [
        "Normal chest X-ray with a mass.",
        "Normal chest radiograph showing an abnormality.",
        "Chest X-ray with no finding except a nodule.",
    ],
)
def test_normal_class_rejects_asserted_abnormalities(text):
    assert reason(text, NORMAL) == "caption_negation"


def test_normal_class_must_say_it_is_normal():
    assert reason("Chest X-ray of an adult.", NORMAL) == "caption_missing_label"


def test_near_identical_duplicates_among_the_k_are_rejected_in_order():
    texts = [
        "Chest X-ray showing cardiomegaly.",
        "Chest x-ray showing cardiomegaly!",
        "chest X ray   showing cardiomegaly",
        "Cardiomegaly seen on a frontal chest radiograph.",
    ]
    verdicts = filter_captions([CaptionCandidate(t) for t in texts], CARDIOMEGALY)
    assert [v.reason for v in verdicts] == [None, "caption_duplicate", "caption_duplicate", None]
    assert "Chest X-ray showing cardiomegaly." in verdicts[1].detail


def test_a_rejected_caption_does_not_block_a_later_similar_one():
    texts = ["As an AI: chest X-ray showing cardiomegaly.", "Chest X-ray showing cardiomegaly."]
    verdicts = filter_captions([CaptionCandidate(t) for t in texts], CARDIOMEGALY)
    assert [v.reason for v in verdicts] == ["caption_junk", None]
