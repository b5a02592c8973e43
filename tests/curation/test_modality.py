"""Modality labels, modality-name normalisation and compound-figure detection (curation.modality)."""

from __future__ import annotations

import pytest
from lxml import etree

from curation.modality import MODALITIES, is_compound, label_modality, normalize_modality
from schemas import Concept

JATS = "sample_data/jats"


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("CT scan of the abdomen showing a liver lesion.", "ct"),
        ("MRI of the brain showing a glioma.", "mri"),
        ("T2-weighted images of the knee.", "mri"),
        ("Chest X-ray showing cardiomegaly.", "radiography"),
        ("Mammogram with a spiculated mass.", "radiography"),
        ("Transabdominal ultrasonography of the kidneys.", "ultrasound"),
        ("PET/CT images demonstrating metastases in the liver.", "nuclear"),
        ("Histopathology image of breast tissue with immunohistochemical staining.", "histopathology"),
        ("H&E stained section of a lung adenocarcinoma.", "histopathology"),
        ("Fluorescence microscopy of HeLa cells.", "microscopy"),
        ("Fundus photograph showing diabetic retinopathy.", "ophthalmic"),
        ("OCT scan of a patient with glaucoma.", "ophthalmic"),
        ("Dermoscopy image of a melanoma.", "dermatology"),
        ("Clinical photograph of psoriasis plaques on the elbow.", "dermatology"),
        ("Endoscopic view of a gastric ulcer.", "endoscopy"),
        ("Kaplan-Meier curves for patients with breast cancer.", "chart"),
        ("Schematic presentation of two models of holin hole formation.", "diagram"),
        ("Chemical structure of the contrast agent gadolinium.", "chemical_structure"),
        ("Gross specimen of a resected kidney.", "photograph"),
    ],
)
def test_label_modality_from_caption_cues(caption, expected):
    modality, confidence = label_modality(caption, [])
    assert modality == expected
    assert 0.4 < confidence < 1.0


def test_unknown_caption_is_other_with_zero_confidence():
    assert label_modality("Effects of holin allelic sequences on the stochasticity of lysis time.", []) == (
        "other",
        0.0,
    )
    assert label_modality("", []) == ("other", 0.0)


def test_concepts_add_evidence():
    caption = "Cross-sectional imaging of both kidneys."  # no caption cue; the tagger found a CT concept
    ct = Concept("C0040405", "X-Ray Computed Tomography", ["T060"], 0, 19, 1.0)
    assert label_modality(caption, []) == ("other", 0.0)
    modality, confidence = label_modality(caption, [ct])
    assert modality == "ct" and confidence > 0.5
    assert label_modality("CT of the chest.", [ct])[1] > label_modality("CT of the chest.", [])[1]


def test_competing_evidence_lowers_confidence():
    _, clear = label_modality("MRI of the brain.", [])
    _, mixed = label_modality("MRI of the brain with a CT comparison.", [])
    assert mixed < clear


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CT", "ct"),
        ("X-ray", "radiography"),
        ("fundus photography", "ophthalmic"),
        ("MR", "mri"),
        ("Dermoscopy", "dermatology"),
        ("histopathology", "histopathology"),
        ("SM", "histopathology"),
        ("Chest radiographs", "radiography"),
        ("Ultrasound", "ultrasound"),
        ("something else", "other"),
        ("", "other"),
        (None, "other"),
    ],
)
def test_normalize_modality(name, expected):
    assert normalize_modality(name) == expected
    assert normalize_modality(name) in MODALITIES


@pytest.mark.parametrize(
    "caption",
    [
        "(A) Axial CT. (B) Coronal reconstruction.",
        "A, axial CT; B, coronal reconstruction.",
        "Left: T1-weighted image. Right: T2-weighted image.",
        "MRI of the brain (a–d) in four patients.",
        "Panels A and B show the lesion before and after treatment.",
        "Figure 2A-C shows the time course.",
        "Detection of the molecule (top panel) and its fragment (bottom panel).",
    ],
)
def test_compound_captions(caption):
    assert is_compound(caption)


@pytest.mark.parametrize(
    "caption",
    [
        "Chest X-ray showing cardiomegaly.",
        "Key H-C correlations in the head region.",
        "T-cell counts in controls (A).",
        "Bacterial strains used in this study.",
        "",
    ],
)
def test_single_panel_captions(caption):
    assert not is_compound(caption)


def _captions(path):
    parser = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)
    tree = etree.parse(path, parser)
    return [
        " ".join("".join(c.itertext()).split())
        for c in tree.xpath("//*[local-name()='fig']/*[local-name()='caption']")
    ]


def test_compound_detection_on_real_captions():
    captions = _captions(f"{JATS}/1471-2180-11-174.nxml")
    flags = [is_compound(c) for c in captions]
    # figures 2, 3 and 4 have panels (A)..(D); figure 1 is a single schematic
    assert flags == [False, True, True, True]
