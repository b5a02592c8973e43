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
