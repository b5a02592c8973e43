import io
import json
from pathlib import Path

import datasets
import pytest
from PIL import Image

from connectors.classification import (
    ClassificationSample,
    ManifestRowError,
    open_classification_dataset,
    read_hf_dataset,
    read_image_bytes,
    read_image_folder,
    read_manifest,
    split_for,
)
from connectors.images import ImageError
from connectors.splits import SplitRatios, assign_split


def png(value: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (40, 40), value).save(buf, "PNG")
    return buf.getvalue()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def samples(items) -> list[ClassificationSample]:
    return [i for i in items if isinstance(i, ClassificationSample)]


def errors(items) -> list[ManifestRowError]:
    return [i for i in items if isinstance(i, ManifestRowError)]


def test_image_folder(tmp_path):
    root = tmp_path / "xray"
    write(root / "normal" / "a.png", png(1))
    write(root / "pneumonia" / "b.png", png(2))
    write(root / "pneumonia" / "ward2" / "c.png", png(3))
    write(root / "pneumonia" / ".DS_Store", b"junk")
    write(root / "README.md", "about this dataset")
    items = list(read_image_folder(str(root)))

    found = samples(items)
    assert [(s.sample_id, s.labels, s.split, s.image_name) for s in found] == [
        ("normal/a", ["normal"], None, "a.png"),
        ("pneumonia/b", ["pneumonia"], None, "b.png"),
        ("pneumonia/ward2/c", ["pneumonia"], None, "c.png"),
    ]
    assert read_image_bytes(found[1]) == png(2)
    (error,) = errors(items)
    assert (error.reason, error.sample_id) == ("label_missing", "README")


def test_image_folder_with_split_folders_and_duplicates(tmp_path):
    root = tmp_path / "derm"
    write(root / "train" / "melanoma" / "a.png", png())
    write(root / "val" / "nevus" / "b.png", png())
    write(root / "test" / "nevus" / "c.jpg", png())
    write(root / "test" / "nevus" / "c.png", png())
    items = list(open_classification_dataset(str(root)))
    assert [(s.sample_id, s.labels, s.split) for s in samples(items)] == [
        ("test/nevus/c", ["nevus"], "test"),
        ("train/melanoma/a", ["melanoma"], "train"),
        ("val/nevus/b", ["nevus"], "validation"),
    ]
    assert [(e.reason, e.sample_id) for e in errors(items)] == [("duplicate_sample", "test/nevus/c")]


def test_csv_manifest_rows_and_errors(tmp_path):
    write(tmp_path / "images" / "p1.png", png())
    manifest = write(
        tmp_path / "meta" / "labels.csv",
        "path,label,split,patient_id\n"
        "images/p1.png,effusion,train,P1\n"
        "images/p2.png,,test,P2\n"
        ",normal,,P3\n"
        "images/p4.dcm,normal,holdout,\n"
        "images/p1.png,effusion,train,P1\n"
        "images/p5.png,normal,VAL,P5\n",
    )
    items = list(read_manifest(str(manifest), root=str(tmp_path)))  # paths relative to the folder above
    assert len(items) == 6  # one outcome per row: nothing dropped

    first, fifth = samples(items)
    assert (first.sample_id, first.labels, first.split, first.group) == (
        "images/p1",
        ["effusion"],
        "train",
        "P1",
    )
    assert first.uri == str(tmp_path / "images" / "p1.png")
    assert read_image_bytes(first) == png()
    assert (fifth.sample_id, fifth.split) == ("images/p5", "validation")

    assert [(e.row_number, e.reason) for e in errors(items)] == [
        (3, "label_missing"),
        (4, "path_missing"),
        (5, "split_unknown"),
        (6, "duplicate_sample"),
    ]


@pytest.mark.parametrize(
    "path",
    ["../images/p1.png", "/etc/passwd", "file:///etc/passwd", "s3://bucket/p5.png", "a/../../secret.png"],
)
def test_manifest_paths_outside_the_dataset_folder_are_rejected(tmp_path, path):
    manifest = write(tmp_path / "meta" / "labels.csv", f"path,label\n{path},normal\nok.png,normal\n")
    bad, good = read_manifest(str(manifest))
    assert isinstance(bad, ManifestRowError) and bad.reason == "path_outside_dataset"
    assert "passwd" not in bad.detail and "secret" not in bad.detail
    assert good.uri == str(tmp_path / "meta" / "ok.png")


def test_multi_label_csv_and_jsonl(tmp_path):
    csv_manifest = write(
        tmp_path / "m.csv", 'path,labels,study_id\na.png,"edema; effusion|edema",S1\nb.png,normal,S2\n'
    )
    first, second = read_manifest(str(csv_manifest))
    assert first.labels == ["edema", "effusion"] and first.group == "S1"
    assert second.labels == ["normal"]

    lines = [
        {"path": "a.png", "labels": ["mass", "nodule"], "uncertain_labels": ["atelectasis", "mass"]},
        {"path": "b.png", "label": 3, "patient_id": 17},
        "{not json",
        [1, 2],
        {"path": "c.png", "labels": []},
    ]
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines[:2]) + "\n\n"
    text += "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines[2:]) + "\n"
    items = list(read_manifest(str(write(tmp_path / "m.jsonl", text))))
    a, b = samples(items)
    assert a.labels == ["mass", "nodule"] and a.uncertain_labels == ["atelectasis"]
    assert b.labels == ["3"] and b.group == "17"
    assert [(e.row_number, e.reason) for e in errors(items)] == [
        (4, "manifest_row_malformed"),
        (5, "manifest_row_malformed"),
        (6, "label_missing"),
    ]


def test_wide_manifest_with_uncertain_labels(tmp_path):
    manifest = write(
        tmp_path / "chexpert.csv",
        "path,Edema,Cardiomegaly,Effusion\np1.jpg,1.0,-1.0,\np2.jpg,0.0,,0\np3.jpg,2,,\n",
    )
    items = list(read_manifest(str(manifest), label_columns=["Edema", "Cardiomegaly", "Effusion"]))
    p1, p2 = samples(items)
    assert (p1.labels, p1.uncertain_labels) == (["Edema"], ["Cardiomegaly"])
    assert (p2.labels, p2.uncertain_labels) == ([], [])
    (error,) = errors(items)
    assert (error.row_number, error.reason) == (4, "label_invalid")


@pytest.fixture
def hf_dataset(tmp_path) -> Path:
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=["benign", "malignant"]),
            "patient_id": datasets.Value("string"),
        }
    )
    train = datasets.Dataset.from_dict(
        {
            "image": [
                {"bytes": png(1), "path": None},
                {"bytes": png(2), "path": None},
                {"bytes": png(3), "path": None},
            ],
            "label": [1, 0, -1],
            "patient_id": ["A", "B", "C"],
        },
        features=features,
    )
    test = datasets.Dataset.from_dict(
        {"image": [{"bytes": png(4), "path": None}], "label": [0], "patient_id": ["D"]}, features=features
    )
    path = tmp_path / "hf"
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(path))
    return path


def test_hf_dataset_with_class_labels(hf_dataset):
    items = list(read_hf_dataset(str(hf_dataset)))
    assert [(s.sample_id, s.labels, s.split, s.group) for s in samples(items)] == [
        ("test-0", ["benign"], "test", "D"),
        ("train-0", ["malignant"], "train", "A"),
        ("train-1", ["benign"], "train", "B"),
    ]
    first = samples(items)[1]
    assert first.uri is None and read_image_bytes(first) == png(1)
    (error,) = errors(items)
    assert (error.sample_id, error.reason) == ("train-2", "label_missing")
    assert [s.sample_id for s in samples(open_classification_dataset(str(hf_dataset)))] == [
        "test-0",
        "train-0",
        "train-1",
    ]


def test_hf_multi_label_parquet_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    features = datasets.Features(
        {"img": datasets.Image(), "findings": datasets.List(datasets.ClassLabel(names=["a", "b", "c"]))}
    )
    ds = datasets.Dataset.from_dict(
        {"img": [{"bytes": png(), "path": None}] * 2, "findings": [[0, 2], [1]]}, features=features
    )
    (tmp_path / "data").mkdir()
    ds.to_parquet(str(tmp_path / "data" / "train-00000-of-00001.parquet"))
    found = samples(open_classification_dataset(str(tmp_path)))
    assert [(s.sample_id, s.labels, s.split) for s in found] == [
        ("train-0", ["a", "c"], "train"),
        ("train-1", ["b"], "train"),
    ]


def test_split_for_groups_by_patient():
    ratios = SplitRatios(0.5, 0.25, 0.25)
    given = ClassificationSample("x", ["a"], "x.png", None, "x.png", "test", "P1")
    assert split_for(given, ratios) == "test"
    by_patient: dict[str, set[str]] = {}
    for patient in range(40):
        for image in range(3):
            sample = ClassificationSample(f"p{patient}/i{image}", ["a"], "u", None, "n", None, f"P{patient}")
            by_patient.setdefault(sample.group, set()).add(split_for(sample, ratios))
    assert all(len(splits) == 1 for splits in by_patient.values())  # no patient straddles splits
    assert set().union(*by_patient.values()) == {"train", "validation", "test"}
    loner = ClassificationSample("solo/1", ["a"], "u", None, "n", None, None)
    assert split_for(loner, ratios) == assign_split("solo/1", ratios)


def test_read_image_bytes_errors(tmp_path):
    missing = ClassificationSample("m", ["a"], str(tmp_path / "nope.png"), None, "nope.png", None, None)
    with pytest.raises(ImageError) as err:
        read_image_bytes(missing)
    assert err.value.reason == "image_missing"
    big = ClassificationSample(
        "b", ["a"], str(write(tmp_path / "big.png", png())), None, "big.png", None, None
    )
    with pytest.raises(ImageError) as err:
        read_image_bytes(big, max_bytes=10)
    assert err.value.reason == "image_too_large"


def test_unknown_spec_is_refused(tmp_path):
    with pytest.raises(ValueError):
        list(open_classification_dataset(str(write(tmp_path / "notes.txt", "x"))))
