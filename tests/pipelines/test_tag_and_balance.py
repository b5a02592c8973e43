"""`medcorpus tag` and `medcorpus balance` end to end on Beam's DirectRunner, with the bundled sample KB."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.corpus import corpus_rows
from pipelines.cli import main

CAPTIONS = [
    "CT scan of the liver showing a hepatic lesion.",
    "Axial CT of the abdomen with a liver mass.",
    "MRI of the brain showing a glioma.",
    "Chest X-ray showing cardiomegaly.",
    "(A) CT of the liver. (B) MRI of the liver after contrast.",
    "Fundus photograph of the retina.",
    "CT of the kidney with a renal cyst.",
    "CT of the lung showing a pulmonary nodule.",
]


def run(*args: str) -> dict:
    out = Path(args[args.index("--out") + 1])
    code = main(list(args))
    manifest = json.loads((out / "manifest.json").read_text())
    assert code == (0 if manifest["reconciled"] else 3), manifest["problems"]
    return manifest


def rows(corpus: Path) -> list[dict]:
    return list(corpus_rows(str(corpus)))


@pytest.fixture(scope="module")
def foreign_corpus(tmp_path_factory) -> Path:
    """Any Parquet corpus with `id` and `caption` (and columns medcorpus knows nothing of)."""
    root = tmp_path_factory.mktemp("foreign")
    (root / "data").mkdir()
    table = pa.table(
        {
            "id": [f"x/{i}" for i in range(len(CAPTIONS) * 3)],
            "caption": CAPTIONS * 3,
            "hospital_score": list(range(len(CAPTIONS) * 3)),
        }
    )
    pq.write_table(table, root / "data" / "train-00000-of-00001.parquet")
    return root


@pytest.fixture(scope="module")
def tagged(foreign_corpus, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tagged") / "corpus"
    return out, run("tag", "--in", str(foreign_corpus), "--out", str(out))


def test_tag_adds_concepts_modality_and_compound_flags(tagged):
    out, manifest = tagged
    assert manifest["stages"]["tag"] == {"in": 24, "out": 24, "rejected": {}, "removed": {}}
    assert manifest["knowledge_base"]["name"] == "medcorpus-umls-sample"
    assert manifest["knowledge_base"]["concepts"] > 300
    by_caption = {r["caption"]: r for r in rows(out)}
    liver = by_caption[CAPTIONS[0]]
    cuis = {c["cui"] for c in liver["concepts"]}
    assert {"C0023884", "C0040405"} <= cuis  # Liver; X-Ray Computed Tomography
    for concept in liver["concepts"]:
        assert concept["name"] and concept["semtypes"] and 0 < concept["score"] <= 1.0001
    starts = [c["start"] for c in liver["concepts"]]
    assert starts == sorted(starts)
    assert liver["modality"] == "ct" and liver["modality_confidence"] > 0
    assert by_caption[CAPTIONS[2]]["modality"] == "mri"
    assert by_caption[CAPTIONS[4]]["compound"] is True and liver["compound"] is False
    # The foreign column survives, with its values.
    assert sorted(r["hospital_score"] for r in rows(out)) == list(range(24))


def test_concept_spans_point_at_the_mention(tagged):
    out, _ = tagged
    for row in rows(out):
        for concept in row["concepts"]:
            mention = row["caption"][concept["start"] : concept["end"]]
            assert mention.strip() == mention and mention


def test_tagged_corpus_loads_with_datasets(tagged):
    out, _ = tagged
    ds = datasets.load_dataset(str(out), split="train")
    assert "concepts" in ds.column_names and len(ds) == 24


def test_classification_rows_keep_their_card_modality(sample_classification_corpus, tmp_path):
    corpus = sample_classification_corpus
    out = tmp_path / "tagged"
    run("tag", "--in", str(corpus), "--out", str(out))
    found = {r["class_labels"][0]: r for r in rows(out)}
    assert (
        found["optic disc"]["modality"] == "ophthalmic" and found["optic disc"]["modality_confidence"] == 1.0
    )
    assert any(c["cui"] == "C0035298" for c in found["optic disc"]["concepts"])  # Retina


def test_balance_caps_every_concept_deterministically(tagged, tmp_path):
    source, _ = tagged
    before = {}
    for row in rows(source):
        for cui in {c["cui"] for c in row["concepts"]}:
            before[cui] = before.get(cui, 0) + 1
    assert max(before.values()) > 4
    first = run("balance", "--in", str(source), "--out", str(tmp_path / "a"), "--max-per-concept", "4")
    second = run("balance", "--in", str(source), "--out", str(tmp_path / "b"), "--max-per-concept", "4")
    kept = rows(tmp_path / "a")
    assert [r["id"] for r in kept] == [r["id"] for r in rows(tmp_path / "b")]
    after = {}
    for row in kept:
        for cui in {c["cui"] for c in row["concepts"]}:
            after[cui] = after.get(cui, 0) + 1
    assert max(after.values()) <= 4
    # Tail concepts are kept whole unless their pairs also carry a head concept (then the cap wins).
    head = {c for c, n in before.items() if n > 4}
    shares_a_pair = {
        c
        for row in rows(source)
        for c in {x["cui"] for x in row["concepts"]}
        if head & {x["cui"] for x in row["concepts"]}
    }
    tail_alone = [c for c, n in before.items() if n <= 4 and c not in shares_a_pair]
    assert tail_alone and all(after.get(c, 0) == before[c] for c in tail_alone)
    stage = first["stages"]["balance"]
    assert stage["in"] == 24 and stage["out"] == len(kept)
    assert stage["removed"]["over_concept_cap"] == 24 - len(kept)
    assert first["concept_histogram"]["before"] == before
    assert first["concept_histogram"]["after"] == after
    assert second["concept_histogram"] == first["concept_histogram"]


def test_balance_needs_a_tagged_corpus(foreign_corpus, tmp_path, capsys):
    args = ["balance", "--in", str(foreign_corpus), "--out", str(tmp_path / "x"), "--max-per-concept", "2"]
    assert main(args) == 2
    assert "concepts" in capsys.readouterr().err


def test_rows_without_an_id_are_rejected_not_lost(tmp_path):
    (tmp_path / "in" / "data").mkdir(parents=True)
    table = pa.table({"id": ["a", None], "caption": ["CT of the liver.", None]})
    pq.write_table(table, tmp_path / "in" / "data" / "train-00000-of-00001.parquet")
    manifest = run("tag", "--in", str(tmp_path / "in"), "--out", str(tmp_path / "out"))
    assert manifest["stages"]["tag"] == {"in": 2, "out": 1, "rejected": {"id_missing": 1}, "removed": {}}
    assert [r["id"] for r in rows(tmp_path / "out")] == ["a"]
