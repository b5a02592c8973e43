"""`medcorpus ingest classification` end to end on Beam's DirectRunner, with the template backend, on the
bundled sample dataset (real DICOM, NIfTI, PNG and JPEG files)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pydicom
import pytest
from PIL import Image

from connectors.classification_pairs import anonymous_name, record_id
from connectors.corpus import corpus_rows
from pipelines.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "classification"
PHI_VALUES = [
    "DEMO^PATIENT^PHI",
    "PHI-ID-20261127",
    "19010101",
    "ACC-PHI-99887766",
    "Demo Hospital PHI Institute",
    "DOCTOR^REFERRING^PHI",
    "ct-patient-0",  # the manifest's patient ids are identifiers too
    "fundus-patient-1",
]


def ingest(dataset: Path | str, out: Path, *extra: str) -> dict:
    code = main(
        [
            "ingest",
            "classification",
            "--dataset",
            str(dataset),
            "--out",
            str(out),
            "--cache-dir",
            "none",
            *extra,
        ]
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert code == (0 if manifest["reconciled"] else 3)
    return manifest


def rows(corpus: Path, folder: str = "data") -> list[dict]:
    return list(corpus_rows(str(corpus), folder))


@pytest.fixture(scope="module")
def demo_corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cls") / "corpus"
    manifest = ingest(
        SAMPLE / "manifest.csv", out, "--card", str(SAMPLE / "card.yaml"), "--splits", "50/25/25"
    )
    return out, manifest


def test_every_sample_becomes_a_captioned_pair(demo_corpus):
    out, manifest = demo_corpus
    assert manifest["reconciled"], manifest["problems"]
    assert manifest["stages"]["samples"] == {"in": 14, "out": 14, "rejected": {}, "removed": {}}
    pairs = rows(out)
    assert len(pairs) == 14
    by_label = {}
    for pair in pairs:
        assert (
            pair["source"] == "classification"
            and pair["kind"] == "image"
            and pair["dataset"] == "medcorpus-demo"
        )
        assert pair["id"].startswith("cls/medcorpus-demo/")
        assert len(pair["captions"]) == 10 and pair["caption"] == pair["captions"][0]
        assert pair["text_model"] == "template"
        by_label[pair["class_labels"][0]] = pair
    assert by_label["thoracic spine"]["caption"] == "Chest CT showing thoracic spine."
    assert by_label["thoracic spine"]["modality"] == "ct"
    assert by_label["thoracic spine"]["dicom"]["modality"] == "CT"
    assert by_label["cerebral hemispheres"]["modality"] == "mri"
    assert by_label["optic disc"]["modality"] == "ophthalmic"
    assert by_label["colonic glands"]["modality"] == "histopathology"
    mri = by_label["cerebral hemispheres"]
    name = mri["source_member"].split("#")[0]
    assert name in {
        f"{anonymous_name(f'brain_mri/mri_{k}')}.nii.gz" for k in (0, 1)
    }  # a hash, not the file name
    assert mri["source_uri"].endswith("manifest.csv")  # the dataset, never the image's own path
    # Every caption names its class and no other.
    classes = set(by_label)
    for pair in pairs:
        (label,) = pair["class_labels"]
        for caption in pair["captions"]:
            assert label in caption.lower()
            assert not any(other in caption.lower() for other in classes - {label})


def test_no_identifying_value_reaches_any_output(demo_corpus):
    out, _ = demo_corpus
    # The sample DICOM files really carry the planted values.
    ds = pydicom.dcmread(SAMPLE / "chest_ct" / "ct_0.dcm")
    assert str(ds.PatientName) == "DEMO^PATIENT^PHI" and ds.InstitutionName == "Demo Hospital PHI Institute"
    written = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in written)
    for path in written:
        data = path.read_bytes()
        for value in PHI_VALUES:
            assert value.encode() not in data, f"{value!r} found in {path}"
    # The parquet is compressed: check the decoded values too.
    text = json.dumps(rows(out), default=str)
    for value in PHI_VALUES:
        assert value not in text


def test_patients_never_straddle_splits(demo_corpus):
    out, _ = demo_corpus
    split_of: dict[str, set] = {}
    for pair in rows(out):
        split_of.setdefault(pair["group_id"], set()).add(pair["split"])
    assert all(len(s) == 1 for s in split_of.values())
    # Eight patient ids in the manifest.
    assert len(split_of) == 8


def test_corpus_loads_with_datasets(demo_corpus):
    out, manifest = demo_corpus
    loaded = datasets.load_dataset(str(out))
    assert set(loaded) == set(manifest["outputs"]["by_split"])
    first = next(iter(loaded.values()))[0]
    assert isinstance(first["image"], Image.Image)
    assert first["captions"] and first["class_labels"]


def test_one_record_per_caption(tmp_path):
    out = tmp_path / "out"
    manifest = ingest(
        SAMPLE / "manifest.csv",
        out,
        "--card",
        str(SAMPLE / "card.yaml"),
        "--caption-mode",
        "records",
        "--captions-per-class",
        "3",
    )
    assert manifest["reconciled"], manifest["problems"]
    pairs = rows(out)
    assert len(pairs) == 14 * 3
    assert {p["id"].rsplit("/", 1)[1] for p in pairs} == {"0", "1", "2"}
    assert all(len(p["captions"]) == 1 for p in pairs)


def test_volumes_give_several_slices(tmp_path):
    out = tmp_path / "out"
    manifest = ingest(SAMPLE / "manifest.csv", out, "--card", str(SAMPLE / "card.yaml"), "--slices", "3")
    assert manifest["reconciled"], manifest["problems"]
    mri = sorted(p["id"] for p in rows(out) if p["class_labels"] == ["cerebral hemispheres"])
    assert len(mri) == 6 and all("/axial-" in i for i in mri)


def test_bad_rows_and_files_become_rejects(tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(SAMPLE, root)
    (root / "chest_ct" / "broken.dcm").write_bytes((root / "chest_ct" / "ct_0.dcm").read_bytes()[:400])
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    (root / "fundus" / "tiny.png").write_bytes(buffer.getvalue())
    shutil.copy(root / "ihc" / "ihc_0.jpg", root / "ihc" / "ihc_8.jpg")
    shutil.copy(root / "ihc" / "ihc_0.jpg", root / "ihc" / "ihc_9.jpg")
    manifest_text = (root / "manifest.csv").read_text()
    manifest_text += (
        "chest_ct/broken.dcm,thoracic spine,ct-patient-9\n"
        "fundus/tiny.png,optic disc,fundus-patient-9\n"
        "fundus/absent.png,optic disc,fundus-patient-9\n"
        "ihc/ihc_8.jpg,,ihc-patient-9\n"
        "ihc/ihc_9.jpg,mitosis,ihc-patient-9\n"
        "ihc/ihc_1.jpg,colonic glands,ihc-patient-0\n"
    )
    (root / "manifest.csv").write_text(manifest_text)
    out = tmp_path / "out"
    manifest = ingest(root / "manifest.csv", out, "--card", str(root / "card.yaml"))
    assert manifest["reconciled"], manifest["problems"]
    reasons = {r["id"]: (r["stage"], r["reason"]) for r in rows(out, "rejects")}
    assert reasons[record_id("medcorpus-demo", "chest_ct/broken")] == ("samples", "dicom_decode")
    assert reasons[record_id("medcorpus-demo", "fundus/tiny")] == ("samples", "image_too_small")
    assert reasons[record_id("medcorpus-demo", "fundus/absent")][1] == "image_missing"
    assert reasons[record_id("medcorpus-demo", "ihc/ihc_8")] == ("samples", "label_missing")
    assert reasons[record_id("medcorpus-demo", "ihc/ihc_1")] == ("samples", "duplicate_sample")
    assert reasons[record_id("medcorpus-demo", "ihc/ihc_9")] == ("pairs", "card_unknown_class")
    assert manifest["stages"]["samples"]["in"] == 20
    assert len(rows(out)) == 14


def test_without_a_card_the_labels_and_dicom_modality_are_used(tmp_path):
    """An image folder (root/<class>/<image>) and no card: the class is the label, the modality comes from
    the DICOM files where they state it."""
    root = tmp_path / "folder"
    (root / "spine").mkdir(parents=True)
    for name in ("ct_0.dcm", "ct_1.dcm"):
        shutil.copy(SAMPLE / "chest_ct" / name, root / "spine" / name)
    out = tmp_path / "out"
    manifest = ingest(root, out)
    assert manifest["reconciled"], manifest["problems"]
    pairs = rows(out)
    assert len(pairs) == 2
    assert all(p["caption"] == "CT showing spine." and p["modality"] == "ct" for p in pairs)
    assert all(p["dataset"] == "folder" for p in pairs)


MULTI_CARD = """\
name: chest-findings
modality: X-ray
anatomy: chest
classes:
  cardiomegaly: {synonyms: [enlarged heart]}
  effusion: {description: pleural effusion, synonyms: [pleural effusion]}
  pneumothorax: {}
  no finding: {normal: true}
"""


def test_multi_label_captions_name_the_positive_findings_only(tmp_path):
    root = tmp_path / "cxr"
    root.mkdir()
    image = SAMPLE / "fundus" / "fundus_0.png"  # any real image: the test is about the captions
    lines = [
        {
            "path": "a.png",
            "labels": ["cardiomegaly", "effusion"],
            "uncertain_labels": ["pneumothorax"],
            "patient_id": "p1",
        },
        {"path": "b.png", "labels": ["effusion", "cardiomegaly"], "patient_id": "p2"},
        {"path": "c.png", "labels": ["no finding"], "patient_id": "p3"},
    ]
    for line in lines:
        shutil.copy(image, root / line["path"])
    (root / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (root / "card.yaml").write_text(MULTI_CARD)
    out = tmp_path / "out"
    manifest = ingest(
        root / "manifest.jsonl", out, "--card", str(root / "card.yaml"), "--captions-per-class", "5"
    )
    assert manifest["reconciled"], manifest["problems"]
    by_id = {name: p for p in rows(out) for name in "abc" if p["id"] == record_id("chest-findings", name)}
    assert sorted(by_id["a"]["class_labels"]) == ["cardiomegaly", "effusion"]
    assert by_id["a"]["captions"] == by_id["b"]["captions"]  # one label set, captioned once
    for caption in by_id["a"]["captions"]:
        text = caption.lower()
        assert "cardiomegaly" in text or "enlarged heart" in text
        assert "effusion" in text
        assert "pneumothorax" not in text  # uncertain labels are never mentioned
    assert by_id["c"]["caption"] == "Normal chest X-ray."
    assert by_id["a"]["modality"] == "radiography"


def test_huggingface_dataset_with_a_class_label(tmp_path):
    images = [Image.open(SAMPLE / "ihc" / f"ihc_{i}.jpg") for i in range(4)]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["benign", "malignant"])}
    )
    ds = datasets.Dataset.from_dict({"image": images, "label": [0, 1, 0, 1]}, features=features)
    ds.save_to_disk(str(tmp_path / "hf"))
    out = tmp_path / "out"
    manifest = ingest(tmp_path / "hf", out, "--name", "ihc-hf")
    assert manifest["reconciled"], manifest["problems"]
    found = rows(out)
    assert len(found) == 4
    assert sorted(p["class_labels"][0] for p in found) == ["benign", "benign", "malignant", "malignant"]
    assert all(p["id"].startswith("cls/ihc-hf/") for p in found)
    assert {p["caption"] for p in found} == {"Image showing benign.", "Image showing malignant."}


def test_rerun_writes_identical_shards(demo_corpus, tmp_path):
    out, _ = demo_corpus
    again = tmp_path / "again"
    ingest(SAMPLE / "manifest.csv", again, "--card", str(SAMPLE / "card.yaml"), "--splits", "50/25/25")
    first = sorted(p.relative_to(out) for p in out.glob("*/*.parquet"))
    assert first == sorted(p.relative_to(again) for p in again.glob("*/*.parquet"))
    for relative in first:
        assert (out / relative).read_bytes() == (again / relative).read_bytes()


def test_planted_patient_ids_reach_no_output_file(tmp_path):
    """CheXpert / MIMIC-style layouts: patient and study ids in folder names, file names and manifest
    columns. None may appear in any file of the corpus: data, rejects, manifest or card."""
    root = tmp_path / "ds"
    image = SAMPLE / "fundus" / "fundus_0.png"
    lines = ["path,label,patient_id,study_id"]
    for rel, patient, study in [
        ("patients/PAT-12345/study1/view1_frontal.png", "PAT-12345", "STUDY-00777"),
        ("patients/PAT-67890/PAT-67890_lateral.png", "PAT-67890", "STUDY-00888"),
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, root / rel)
        lines.append(f"{rel},optic disc,{patient},{study}")
    lines.append("patients/PAT-55555/absent_PAT-55555.png,optic disc,PAT-55555,STUDY-00999")  # image_missing
    lines.append("../PAT-44444/outside.png,optic disc,PAT-44444,STUDY-00444")  # path_outside_dataset
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    manifest = ingest(root / "manifest.csv", out)
    assert manifest["stages"]["samples"]["rejected"] == {"image_missing": 1, "path_outside_dataset": 1}
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) >= 4
    for path in written:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            names = []
            if "image" in table.column_names:  # the bytes are pixels; the stored file name is text
                names = [image["path"] for image in table.column("image").to_pylist()]
                table = table.drop_columns(["image"])
            text = json.dumps(table.to_pylist(), default=str) + json.dumps(names)
        else:
            text = path.read_text()
        for planted in ("PAT-", "STUDY-", "view1_frontal", "_lateral", "absent_", "outside.png"):
            assert planted not in text, (path.name, planted)
