"""`medcorpus dedupe` end to end on Beam, on a corpus of planted duplicates made from real images
(pydicom, nibabel, scikit-image) and real captions (the bundled JATS articles)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from connectors.classification_pairs import record_id
from connectors.corpus import corpus_rows
from curation.dedupe.planted import EASY_VARIANTS, base_images, planted_pairs, score, write_planted_corpus
from models.embedders import bundled_minilm
from pipelines.cli import main


def run(*args: str) -> dict:
    out = Path(args[args.index("--out") + 1])
    code = main(["dedupe", *args])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["reconciled"], manifest["problems"]
    assert code == 0
    return manifest


def rejects(corpus: Path) -> dict[str, dict]:
    out = {}
    for row in corpus_rows(str(corpus), "rejects"):
        out[row["id"]] = {"reason": row["reason"], **json.loads(row["detail"] or "{}")}
    return out


def ids(corpus: Path) -> list[str]:
    return [r["id"] for r in corpus_rows(str(corpus), columns=["id"])]


@pytest.fixture(scope="module")
def planted():
    return planted_pairs()


@pytest.fixture(scope="module")
def planted_corpus(planted, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("planted") / "corpus"
    write_planted_corpus(str(root), planted)
    return root


@pytest.fixture(scope="module")
def deduped(planted_corpus, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("deduped") / "corpus"
    return out, run("--in", str(planted_corpus), "--out", str(out))


def test_default_levels_find_the_planted_copies_and_merge_no_lookalike(planted, deduped):
    out, manifest = deduped
    removed = rejects(out)
    result = score(planted, {i: r["kept"] for i, r in removed.items()})
    assert result.false_merges == []  # adjacent MRI slices, two stains of one slide: kept apart
    assert result.precision == 1.0
    for variant in EASY_VARIANTS:
        assert result.recall_by_variant[variant] == 1.0, variant
    assert not any(i.startswith("lookalike/") for i in removed)
    assert {"caption/original", "caption/erratum"} & set(removed)  # the caption copy on another image
    # Every removal names a pair that was written, the level and the similarity.
    written = set(ids(out))
    assert all(r["reason"] == "duplicate" and r["kept"] in written for r in removed.values())
    assert all(
        r["level"] in ("exact_image", "exact_caption", "phash") and 0 < r["similarity"] <= 1
        for r in removed.values()
    )
    stage = manifest["stages"]["dedupe"]
    assert stage["in"] == len(planted) and stage["out"] == len(written)
    assert stage["rejected"] == {"duplicate": len(removed)}
    assert sum(manifest["dedupe"]["duplicate"].values()) == len(removed)
    assert manifest["options"]["levels"] == ["exact_image", "exact_caption", "phash"]


def test_the_keep_policy_prefers_the_permissive_licence_then_the_larger_image(planted, deduped):
    out, _ = deduped
    kept = {r["id"]: r for r in corpus_rows(str(out), columns=["id", "license_group", "width", "height"])}
    by_group: dict[str, list] = {}
    for p in planted:
        by_group.setdefault(p.group, []).append(p.record)
    removed = rejects(out)
    for group, records in by_group.items():
        if group in (None, "caption"):
            continue
        survivors = [r for r in records if r.id in kept]
        merged = [r for r in records if removed.get(r.id, {}).get("kept") in {s.id for s in survivors}]
        champion = min(
            [*survivors, *merged],
            key=lambda r: (
                {"commercial": 0, "noncommercial": 1}[r.license_group],
                -r.width * r.height,
                -len(r.caption),
                r.id,
            ),
        )
        assert champion.id in kept, group
        assert kept[champion.id]["license_group"] == "commercial"  # never the non-commercial base


def test_a_rerun_writes_byte_identical_shards(planted_corpus, deduped, tmp_path):
    first, _ = deduped
    run("--in", str(planted_corpus), "--out", str(tmp_path / "again"))
    for folder in ("data", "rejects"):
        a = sorted((first / folder).glob("*.parquet"))
        b = sorted((tmp_path / "again" / folder).glob("*.parquet"))
        assert [p.name for p in a] == [p.name for p in b]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))


def test_each_level_finds_what_it_should_and_nothing_else(planted, planted_corpus, tmp_path):
    records = {p.record.id: p for p in planted}
    only_exact = run(
        "--in", str(planted_corpus), "--out", str(tmp_path / "exact"), "--no-exact-caption", "--no-phash"
    )
    removed = rejects(tmp_path / "exact")
    same_pixels = {}
    for p in planted:
        same_pixels.setdefault(p.record.image_sha256, []).append(p.record.id)
    expected = sum(len(group) - 1 for group in same_pixels.values())
    assert len(removed) == expected > 8 and {r["level"] for r in removed.values()} == {"exact_image"}
    assert only_exact["dedupe"]["duplicate"] == {"exact_image": expected}

    run("--in", str(planted_corpus), "--out", str(tmp_path / "caption"), "--no-exact-image", "--no-phash")
    assert {i: r["level"] for i, r in rejects(tmp_path / "caption").items()} == {
        "caption/original": "exact_caption"
    }

    run(
        "--in",
        str(planted_corpus),
        "--out",
        str(tmp_path / "phash"),
        "--no-exact-image",
        "--no-exact-caption",
    )
    removed = rejects(tmp_path / "phash")
    assert {r["level"] for r in removed.values()} == {"phash"}
    assert all(records[i].group not in (None, "caption") for i in removed)
    result = score(planted, {i: r["kept"] for i, r in removed.items()})
    assert result.false_merges == [] and all(result.recall_by_variant[v] == 1.0 for v in EASY_VARIANTS)


def test_decontamination_removes_exactly_the_pairs_showing_eval_images(planted, planted_corpus, tmp_path):
    evals = tmp_path / "eval-set"
    for name in ("fundus", "ct"):  # an image-folder dataset: <class>/<image>
        (evals / name).mkdir(parents=True)
        base_images()[name].save(evals / name / f"{name}.png")
    manifest = run(
        "--in",
        str(planted_corpus),
        "--out",
        str(tmp_path / "out"),
        "--against",
        str(evals),
        "--no-exact-caption",
    )
    overlap = {i: r for i, r in rejects(tmp_path / "out").items() if r["reason"] == "eval_overlap"}
    groups = {p.record.id: p for p in planted}
    must = {
        i for i, p in groups.items() if p.group in ("fundus", "ct") and p.variant in ("base", *EASY_VARIANTS)
    }
    assert must <= set(overlap)
    assert all(groups[i].group in ("fundus", "ct") for i in overlap)
    assert {r["eval_item"] for r in overlap.values()} == {
        "eval/eval-set/fundus/fundus",
        "eval/eval-set/ct/ct",
    }
    assert manifest["stages"]["against"] == {"in": 2, "out": 2, "rejected": {}, "removed": {}}
    assert manifest["dedupe"]["eval_overlap"] and manifest["inputs"]["against"] == [str(evals)]
    # What the eval set removed is gone from the duplicate groups too: no kept id is an eval overlap.
    assert not {r.get("kept") for r in rejects(tmp_path / "out").values()} & set(overlap)


def test_a_corpus_without_duplicates_passes_through_unchanged(planted, tmp_path):
    distinct = [p for p in planted if p.variant in ("base", "similar_slice", "stain")]
    write_planted_corpus(str(tmp_path / "in"), distinct)
    manifest = run("--in", str(tmp_path / "in"), "--out", str(tmp_path / "out"))
    assert manifest["stages"]["dedupe"] == {
        "in": len(distinct),
        "out": len(distinct),
        "rejected": {},
        "removed": {},
    }
    before = pq.read_table(next((tmp_path / "in" / "data").glob("*.parquet")))
    after = pq.read_table(next((tmp_path / "out" / "data").glob("*.parquet")))
    assert after.sort_by("id").equals(before.sort_by("id"))


def test_cluster_sharded_search_keeps_the_same_set_as_one_exact_index(
    planted, tiny_open_clip_export, tmp_path
):
    write_planted_corpus(str(tmp_path / "in"), planted)
    common = ["--in", str(tmp_path / "in"), "--no-exact-image", "--no-exact-caption", "--no-phash"]
    common += ["--image-embedder", str(tiny_open_clip_export), "--image-threshold", "0.995"]
    one = run(*common, "--out", str(tmp_path / "one"), "--clusters", "1")
    sharded = run(*common, "--out", str(tmp_path / "sharded"), "--clusters", "4", "--kmeans-sample", "78")
    assert set(ids(tmp_path / "one")) == set(ids(tmp_path / "sharded"))
    assert one["dedupe"]["duplicate"]["image_embedding"] > 5  # the comparison is not vacuous
    assert sharded["embedders"]["image"]["identity"].startswith("export@")


def test_several_corpora_are_deduplicated_together(planted, sample_classification_corpus, tmp_path):
    write_planted_corpus(str(tmp_path / "a"), [p for p in planted if p.variant == "base"])
    write_planted_corpus(str(tmp_path / "b"), [p for p in planted if p.variant in EASY_VARIANTS])
    cls = sample_classification_corpus
    inputs = ["--in", str(tmp_path / "a"), "--in", str(tmp_path / "b"), "--in", str(cls)]
    manifest = run(*inputs, "--out", str(tmp_path / "out"))
    written = ids(tmp_path / "out")
    assert len(written) == len(set(written))
    removed = rejects(tmp_path / "out")
    groups: dict[str, set[str]] = {}
    for p in planted:
        if p.variant in ("base", *EASY_VARIANTS):
            groups.setdefault(p.group, set()).add(p.record.id)
    for group, members in groups.items():
        assert len(members & set(written)) == 1, group  # one survivor per group, across corpora a and b
    # The sample dataset's first brain MRI is the very slice the planted brain images copy: a real
    # cross-corpus duplicate, and the only classification pair removed.
    assert {i for i in removed if i.startswith("cls/")} == {record_id("medcorpus-demo", "brain_mri/mri_0")}
    # Classification pairs share template captions by design: never caption duplicates.
    assert not any(r["level"] == "exact_caption" for r in removed.values())
    assert manifest["inputs"]["corpora"] == [str(tmp_path / "a"), str(tmp_path / "b"), str(cls)]
    assert set(pq.read_schema(next((tmp_path / "out" / "data").glob("*.parquet"))).names) >= {
        "class_labels",
        "pmcid",
    }


def test_an_id_held_by_an_earlier_input_is_rejected_as_a_duplicate_id(tmp_path):
    for name, caption in (("first", "one caption"), ("second", "another caption")):
        (tmp_path / name / "data").mkdir(parents=True)
        pq.write_table(
            pa.table({"id": ["x/1", f"x/{name}"], "caption": [caption, caption]}),
            tmp_path / name / "data" / "train-00000-of-00001.parquet",
        )
    manifest = run(
        "--in", str(tmp_path / "first"), "--in", str(tmp_path / "second"), "--out", str(tmp_path / "out")
    )
    assert sorted(ids(tmp_path / "out")) == ["x/1", "x/first", "x/second"]
    assert manifest["stages"]["dedupe"]["rejected"] == {"id_duplicate": 1}
    rows = list(corpus_rows(str(tmp_path / "out"), "rejects"))
    assert rows[0]["id"] == "x/1" and "second" in rows[0]["source_uri"]


def test_caption_embeddings_are_cached_beside_the_corpus_and_reused(planted, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    write_planted_corpus(str(corpus), planted)
    folder = bundled_minilm()
    common = ["--in", str(corpus), "--caption-embedder", folder, "--no-exact-caption"]
    first = run(*common, "--out", str(tmp_path / "a"))
    assert first["dedupe"]["duplicate"].get("caption_embedding") == 1  # the erratum's caption
    cached = list((corpus / "embeddings").glob("*/train-*.parquet"))
    assert len(cached) == 1 and pq.read_table(cached[0]).num_rows == 78

    from models import embedders

    def no_embedding(self, captions):
        raise AssertionError(f"embedded {len(captions)} captions again")

    monkeypatch.setattr(embedders.CaptionEmbedder, "embed", no_embedding)
    second = run(*common, "--out", str(tmp_path / "b"), "--caption-threshold", "0.9")
    assert second["stages"]["dedupe"]["in"] == 78


def test_a_hub_id_as_embedder_is_refused(planted_corpus, tmp_path, capsys):
    args = ["dedupe", "--in", str(planted_corpus), "--out", str(tmp_path / "x")]
    assert main([*args, "--image-embedder", "org/biomedclip"]) == 2
    assert "[embedder_not_local]" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_images_are_what_load_dataset_decodes(deduped):
    import datasets

    out, _ = deduped
    ds = datasets.load_dataset(str(out), split="train")
    assert isinstance(ds[0]["image"], Image.Image) and len(ds) == len(ids(out))


@pytest.mark.parametrize("form", ["corpus", "hf_dataset"])
def test_decontamination_reads_corpora_and_hf_dataset_folders(form, planted, planted_corpus, tmp_path):
    fundus = [p for p in planted if p.group == "fundus" and p.variant == "base"]
    evals = tmp_path / "evals"
    if form == "corpus":
        write_planted_corpus(str(evals), fundus)
        expected_item = "eval/evals/planted/fundus/base"
    else:
        import datasets

        features = datasets.Features(
            {"image": datasets.Image(), "label": datasets.ClassLabel(names=["fundus"])}
        )
        ds = datasets.Dataset.from_dict({"image": [base_images()["fundus"]], "label": [0]}, features=features)
        ds.save_to_disk(str(evals))
        expected_item = "eval/evals/data-0"  # a saved Dataset (no DatasetDict): split "data"
    run("--in", str(planted_corpus), "--out", str(tmp_path / "out"), "--against", str(evals))
    overlap = {i: r for i, r in rejects(tmp_path / "out").items() if r["reason"] == "eval_overlap"}
    easy = {p.record.id for p in planted if p.group == "fundus" and p.variant in ("base", *EASY_VARIANTS)}
    assert easy <= set(overlap) and all(i.startswith("planted/fundus/") for i in overlap)
    assert {r["eval_item"] for r in overlap.values()} == {expected_item}
