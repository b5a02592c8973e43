"""A run never destroys its input or a finished corpus, never leaves a half-written corpus that readers
accept, and answers a user's mistake with one line and exit status 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipelines import tag
from pipelines.cli import main

ROOT = Path(__file__).resolve().parents[2]
CLOUD = ROOT / "sample_data" / "pmc-cloud"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.rglob("*") if ".staging-" in p.name or ".tmp-" in p.name]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pmc") / "corpus"
    assert main(["ingest", "pmc", "--source", str(CLOUD), "--out", str(out)]) == 0
    return out


@pytest.fixture
def copy(corpus, tmp_path) -> Path:
    target = tmp_path / "corpus"
    shutil.copytree(corpus, target)
    return target


@pytest.mark.parametrize(
    "args",
    [
        ["tag", "--in", "{c}", "--out", "{c}", "--overwrite"],
        ["tag", "--in", "{c}/data", "--out", "{c}", "--overwrite"],
        ["tag", "--in", "{c}", "--out", "{c}/tagged"],
        ["balance", "--in", "{c}", "--out", "{c}", "--max-per-concept", "2", "--overwrite"],
        ["dedupe", "--in", "{c}", "--out", "{c}", "--overwrite"],
        ["dedupe", "--in", "{c}", "--against", "{c}/..", "--out", "{c}/../x"],
    ],
)
def test_output_that_is_or_nests_with_an_input_is_refused_and_the_input_untouched(args, copy, capsys):
    before = snapshot(copy.parent)
    assert main([a.format(c=copy) for a in args]) == 2
    assert "[output_overlaps_input]" in capsys.readouterr().err
    assert snapshot(copy.parent) == before


def test_a_failed_rerun_leaves_the_old_corpus_as_it_was(copy, tmp_path, monkeypatch):
    out = tmp_path / "tagged"
    assert main(["tag", "--in", str(copy), "--out", str(out)]) == 0
    before = snapshot(out)

    def broken(tagger, rows):
        raise RuntimeError("the tagger broke halfway")

    monkeypatch.setattr(tag, "tag_rows", broken)
    with pytest.raises(Exception, match="the tagger broke halfway"):
        main(["tag", "--in", str(copy), "--out", str(out), "--overwrite"])
    assert snapshot(out) == before
    assert leftovers(tmp_path) == []


def test_a_failed_first_run_leaves_no_output_folder(copy, tmp_path, monkeypatch):
    monkeypatch.setattr(tag, "tag_rows", lambda tagger, rows: 1 / 0)
    with pytest.raises(Exception, match="division by zero"):
        main(["tag", "--in", str(copy), "--out", str(tmp_path / "new")])
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []


def test_overwrite_removes_only_what_the_old_corpus_owned(copy, tmp_path):
    out = tmp_path / "tagged"
    assert main(["tag", "--in", str(copy), "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    # An old shard the new run will not write, listed by the old manifest: owned, so removed.
    (out / "data" / "extra-00000-of-00001.parquet").write_bytes(b"old shard")
    manifest["outputs"]["shards"].append("extra-00000-of-00001.parquet")
    (out / "manifest.json").write_text(json.dumps(manifest))
    # The user's own files, in data/ and beside it, and the embeddings cache: not owned, so kept.
    (out / "data" / "my-notes.txt").write_text("mine")
    (out / "data" / "train-curated-by-hand.parquet").write_bytes(b"mine too")
    (out / "NOTES.md").write_text("mine")
    (out / "embeddings").mkdir()
    (out / "embeddings" / "cache.parquet").write_bytes(b"cache")
    assert main(["tag", "--in", str(copy), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "data" / "extra-00000-of-00001.parquet").exists()
    for mine in (
        "data/my-notes.txt",
        "data/train-curated-by-hand.parquet",
        "NOTES.md",
        "embeddings/cache.parquet",
    ):
        assert (out / mine).exists(), mine
    assert json.loads((out / "manifest.json").read_text())["reconciled"]


@pytest.mark.parametrize(
    "command",
    [
        ["tag", "--in", "{c}", "--out", "{o}"],
        ["balance", "--in", "{c}", "--out", "{o}", "--max-per-concept", "2"],
        ["dedupe", "--in", "{c}", "--out", "{o}"],
        ["train", "--corpus", "{c}", "--out", "{o}", "--preset", "tiny", "--max-steps", "1"],
        ["tokenizer", "train", "--corpus", "{c}", "--out", "{o}"],
    ],
)
def test_every_reader_refuses_shards_without_a_manifest(command, copy, tmp_path, capsys):
    (copy / "manifest.json").unlink()  # what an interrupted run of the old code left behind
    assert main([a.format(c=copy, o=tmp_path / "out") for a in command]) == 2
    assert "corpus_incomplete" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_user_errors_are_one_line_with_the_reason_and_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["tag", "--in", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("medcorpus tag: error: [path_missing]")
    with pytest.raises(FileNotFoundError):
        main(["--debug", "tag", "--in", str(tmp_path / "missing"), "--out", str(tmp_path / "out")])


@pytest.mark.parametrize("typo", [["--licence", "commercial"], ["--limt", "2"], ["--exclude_semtypes", "x"]])
def test_a_mistyped_option_is_a_usage_error_not_a_beam_option(typo, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["ingest", "pmc", "--source", str(CLOUD), "--out", str(tmp_path / "out"), *typo])
    assert info.value.code == 2
    assert f"unrecognised arguments: {' '.join(typo)}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_real_beam_options_still_pass(copy, tmp_path):
    out = tmp_path / "tagged"
    assert (
        main(
            [
                "tag",
                "--in",
                str(copy),
                "--out",
                str(out),
                "--direct_num_workers",
                "1",
                "--runner=DirectRunner",
            ]
        )
        == 0
    )


def test_a_run_that_writes_no_pair_exits_4_and_says_why(tmp_path, capsys):
    ids = tmp_path / "ids.txt"
    ids.write_text("PMC0000001\n")
    out = tmp_path / "out"
    assert main(["ingest", "pmc", "--source", str(CLOUD), "--pmcids", str(ids), "--out", str(out)]) == 4
    assert "wrote no pairs" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["outputs"]["pairs"] == 0 and manifest["rejects"]["total"] == 1  # still a corpus, with why


def test_a_negative_limit_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["ingest", "pmc", "--source", str(CLOUD), "--out", str(tmp_path / "out"), "--limit", "-3"])
    assert info.value.code == 2 and "at least 1" in capsys.readouterr().err


CLASSIFICATION = ROOT / "sample_data" / "classification"


def test_a_manifest_saved_with_a_byte_order_mark_reads_normally(tmp_path):
    shutil.copytree(CLASSIFICATION, tmp_path / "ds")
    manifest = tmp_path / "ds" / "manifest.csv"
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())  # what Excel writes
    out = tmp_path / "out"
    args = ["--card", str(tmp_path / "ds" / "card.yaml"), "--cache-dir", "none"]
    assert main(["ingest", "classification", "--dataset", str(manifest), "--out", str(out), *args]) == 0
    assert json.loads((out / "manifest.json").read_text())["stages"]["samples"]["rejected"] == {}


def test_a_manifest_without_a_path_column_is_an_error_not_a_corpus_of_rejects(tmp_path, capsys):
    shutil.copytree(CLASSIFICATION, tmp_path / "ds")
    manifest = tmp_path / "ds" / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("path,", "image,", 1))
    args = ["ingest", "classification", "--dataset", str(manifest), "--out", str(tmp_path / "out")]
    assert main([*args, "--cache-dir", "none"]) == 2
    assert "[manifest_columns]" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_balance_on_an_untagged_corpus_is_an_error(copy, tmp_path, capsys):
    assert main(["balance", "--in", str(copy), "--out", str(tmp_path / "out"), "--max-per-concept", "2"]) == 2
    assert "[corpus_untagged]" in capsys.readouterr().err


def test_an_unreachable_llm_server_fails_before_the_run(tmp_path, capsys):
    args = [
        "ingest",
        "classification",
        "--dataset",
        str(CLASSIFICATION / "manifest.csv"),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main([*args, "--llm", "openai", "--server-url", "http://127.0.0.1:9/v1", "--model", "m"]) == 2
    assert "[llm_unreachable]" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, reason",
    [
        (["--corpus", "{tmp}/missing"], "[path_missing]"),
        (["--corpus", "{corpus}", "--split", "tset"], "[usage]"),
        (["--corpus", "{corpus}", "--split", "validation"], "[split_empty]"),
    ],
)
def test_eval_on_nothing_is_an_error(args, reason, corpus, tiny_open_clip_export, tmp_path, capsys):
    filled = [a.format(tmp=tmp_path, corpus=corpus) for a in args]
    assert main(["eval", "--checkpoint", str(tiny_open_clip_export), "--workers", "0", *filled]) == 2
    assert reason in capsys.readouterr().err


def test_a_degraded_caption_backend_is_said_loudly():
    from connectors.corpus import degraded
    from connectors.corpus_card import render_card

    stages = {"captions": {"in": 10, "out": 7, "rejected": {"caption_llm_error": 3}, "removed": {}}}
    warnings = degraded(stages)
    assert len(warnings) == 1 and "3 LLM caption request(s) failed" in warnings[0]
    manifest = {
        "pipeline": "ingest classification",
        "schema_version": "1.0",
        "outputs": {"by_split": {"train": 1}, "bytes_by_split": {"train": 10}, "pairs": 1, "shards": []},
        "rejects": {"total": 3, "bytes": 10, "shards": [], "by_stage": {}},
        "warnings": warnings,
    }
    assert "> **Warning:** 3 LLM caption request(s) failed" in render_card(manifest, "t")


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(copy, tmp_path):
    """A killed process cannot clean up: the next run into the same --out removes what it left."""
    stale = tmp_path / ".tagged.staging-0123456789ab"
    (stale / "data").mkdir(parents=True)
    (stale / "data" / "train-00000-of-00001.parquet.tmp-0123456789abcdef0123456789abcdef").write_bytes(
        b"half"
    )
    assert main(["tag", "--in", str(copy), "--out", str(tmp_path / "tagged")]) == 0
    assert not stale.exists() and leftovers(tmp_path) == []


def test_relative_paths_reach_the_pipeline_absolute(copy, tmp_path, monkeypatch):
    """A remote worker runs in another folder: every path a pipeline opens is made absolute at launch."""
    monkeypatch.chdir(copy.parent)
    assert main(["tag", "--in", copy.name, "--out", "tagged-relative"]) == 0
    manifest = json.loads((copy.parent / "tagged-relative" / "manifest.json").read_text())
    assert manifest["inputs"]["corpus"] == str(copy) and manifest["options"]["out"] == str(
        copy.parent / "tagged-relative"
    )
