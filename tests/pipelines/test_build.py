"""`medcorpus build FILE`: the build file's schema (errors name the line), the plan, skipping what is up to
date, rerunning what changed and what reads it, stopping at a failed step, and Beam options reaching every
pipeline step. Real builds on the bundled sample data, in-process through `pipelines.cli.main`."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest

from pipelines.buildfile.marked_yaml import BuildFileError
from pipelines.buildfile.spec import load_spec
from pipelines.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"

# A build of the bundled PMC articles, tagged and balanced: three Beam pipelines, a few seconds each.
SMALL = """\
out: {out}
beam_options:
  direct_num_workers: 2
  direct_running_mode: multi_threading
sources:
  pmc:
    ingest: pmc
    source: {sample}/pmc-cloud
    splits: 60/20/20
curation:
  - step: tag
    threshold: 0.8
  - step: balance
    max-per-concept: 3
"""


def write(tmp_path: Path, text: str, name: str = "build.yaml") -> str:
    path = tmp_path / name
    path.write_text(filled(text, tmp_path / "out"))
    return str(path)


def filled(text: str, out: Path) -> str:
    return textwrap.dedent(text).replace("{out}", str(out)).replace("{sample}", str(SAMPLE))


def spec_error(tmp_path: Path, text: str) -> BuildFileError:
    with pytest.raises(BuildFileError) as caught:
        load_spec(write(tmp_path, text))
    return caught.value


def build(capsys, *argv: str) -> tuple[int, str]:
    """`medcorpus build ...` in-process: its exit status and what it printed (stdout, then stderr)."""
    code = main(["build", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def manifest_times(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in sorted(out.glob("*/manifest.json"))}


# the schema: every error names its line


def case(name: str, old: str, new: str, line: int, reason: str, words: str):
    """SMALL with `old` replaced by `new`: the error expected, at `line`."""
    assert old in SMALL
    return pytest.param(SMALL.replace(old, new), line, reason, words, id=name)


INVALID = "build_file_invalid"
UNKNOWN = "build_key_unknown"


@pytest.mark.parametrize(
    ("text", "line", "reason", "words"),
    [
        pytest.param("out: x\nsources:\n  pmc: [unclosed\n", 4, INVALID, "not valid YAML", id="yaml-syntax"),
        pytest.param(
            "out: x\ncuraton: []\nsources: {}\n", 2, UNKNOWN, "did you mean `curation`?", id="top-key"
        ),
        case(
            "option-key", "max-per-concept", "max_per_concept", 14, UNKNOWN, "did you mean `max-per-concept`?"
        ),
        case("option-type", "max-per-concept: 3", "max-per-concept: many", 14, INVALID, "invalid int value"),
        case("option-choice", "splits: 60/20/20", "license: free", 9, INVALID, "invalid choice: 'free'"),
        case("required-option", "    max-per-concept: 3\n", "", 13, INVALID, "`max-per-concept` is required"),
        case("build-owned-option", "threshold: 0.8", "out: elsewhere", 12, INVALID, "set by the build"),
        case("unknown-reference", "threshold: 0.8", "in: pcm", 12, INVALID, "did you mean `pmc`?"),
        case(
            "later-reference", "threshold: 0.8", "in: balance", 12, INVALID, "names a step that comes later"
        ),
        case("beam-option", "direct_num_workers", "direct_num_worker", 3, UNKNOWN, "`direct_num_workers`?"),
        case("flag-value", "splits: 60/20/20", "all-versions: yes please", 9, INVALID, "is a flag"),
        case(
            "duplicate-key", "splits: 60/20/20", "source: again", 9, INVALID, "given twice (first on line 8)"
        ),
        case("source-kind", "ingest: pmc", "ingest: pmcc", 7, INVALID, "did you mean `pmc`?"),
        case(
            "duplicate-name",
            "step: tag",
            "step: tag\n    name: pmc",
            11,
            INVALID,
            "two steps are named `pmc`",
        ),
    ],
)
def test_a_wrong_build_file_is_an_error_at_its_line(tmp_path, text, line, reason, words):
    error = spec_error(tmp_path, text)
    assert (error.reason, error.line) == (reason, line), str(error)
    assert str(error).startswith(f"{reason}: {tmp_path / 'build.yaml'}:{line}: ")
    assert words in str(error)


def test_a_step_reading_one_corpus_after_two_sources_must_say_which(tmp_path):
    text = SMALL.replace("sources:\n", "sources:\n  cls:\n    ingest: classification\n    dataset: x.csv\n")
    error = spec_error(tmp_path, text)
    assert error.line == 14 and "reads one corpus, and 2 come before it (cls, pmc)" in str(error)


def test_the_command_line_reports_a_wrong_file_with_its_reason_and_line(tmp_path, capsys):
    path = write(tmp_path, SMALL.replace("max-per-concept", "max-per-concept2"))
    code, printed = build(capsys, path)
    assert code == 2
    assert f"medcorpus build: error: [build_key_unknown] {path}:14: step balance: unknown key" in printed
    assert not (tmp_path / "out").exists()


def test_step_options_come_from_the_commands_own_parsers(tmp_path):
    """The argv a step gets is the command's, references resolved to the earlier steps' folders."""
    spec = load_spec(write(tmp_path, SMALL))
    out = tmp_path / "out"
    assert [(s.name, s.command, s.reads) for s in spec.steps] == [
        ("pmc", ("ingest", "pmc"), ()),
        ("tag", ("tag",), ("pmc",)),
        ("balance", ("balance",), ("tag",)),
    ]
    assert spec.step("balance").options == (
        "--max-per-concept", "3", "--in", f"{out}/tag", "--out", f"{out}/balance", "--overwrite",
    )  # fmt: skip
    assert spec.beam_args == ("--direct_num_workers=2", "--direct_running_mode=multi_threading")


# the plan, skipping and rerunning


def test_dry_run_plans_every_step_and_runs_none(tmp_path, capsys):
    code, printed = build(capsys, write(tmp_path, SMALL), "--dry-run", "--direct_num_workers", "1")
    assert code == 0
    assert "3 steps, 3 to run, 0 up to date" in printed
    assert re.search(r"^  pmc\s+run\s+never built$", printed, re.M)
    # Beam options (the file's, then the command line's, which win) go with every pipeline step
    assert f"balance: medcorpus balance --max-per-concept 3 --in {tmp_path}/out/tag" in printed
    assert (
        printed.count("--direct_num_workers=2 --direct_running_mode=multi_threading --direct_num_workers 1")
        == 3
    )
    assert not (tmp_path / "out").exists()


def test_a_rebuild_skips_what_is_up_to_date_and_reruns_a_changed_step_and_its_readers(tmp_path, capsys):
    path = write(tmp_path, SMALL)
    out = tmp_path / "out"
    code, printed = build(capsys, path)
    assert code == 0, printed
    assert "3 step(s) ran, 0 up to date" in printed
    first = manifest_times(out)
    assert set(first) == {"pmc", "tag", "balance"}

    code, printed = build(capsys, path)
    assert code == 0 and printed.count("skipped (up to date") == 3, printed
    assert "0 step(s) ran, 3 up to date (pmc, tag, balance)" in printed
    assert manifest_times(out) == first

    Path(path).write_text(Path(path).read_text().replace("max-per-concept: 3", "max-per-concept: 2"))
    code, printed = build(capsys, path, "--dry-run")
    assert re.search(r"^  balance\s+run\s+options changed: --max-per-concept 3 -> 2$", printed, re.M)
    assert re.search(r"^  tag\s+skip\s+up to date", printed, re.M)
    code, printed = build(capsys, path)
    assert code == 0 and "1 step(s) ran, 2 up to date (pmc, tag)" in printed, printed
    second = manifest_times(out)
    assert {name for name in first if first[name] != second[name]} == {"balance"}
    assert json.loads((out / "balance" / "manifest.json").read_text())["options"]["max_per_concept"] == 2

    # tag's new options change its manifest: balance, which reads it, runs again too
    Path(path).write_text(Path(path).read_text().replace("threshold: 0.8", "threshold: 0.85"))
    code, printed = build(capsys, path)
    assert code == 0 and "[3/3] balance: running (input changed: step tag)" in printed, printed
    third = manifest_times(out)
    assert {name for name in first if second[name] != third[name]} == {"tag", "balance"}

    # a corpus rebuilt to the same content is the same input: the steps that read it stay skipped
    code, printed = build(capsys, path, "--force", "pmc")
    assert code == 0 and "1 step(s) ran, 2 up to date (tag, balance)" in printed, printed

    shutil.rmtree(out / "tag")
    code, printed = build(capsys, path, "--dry-run")
    assert f"tag      run   its output {out}/tag is missing" in printed


def test_a_failed_step_stops_the_build_and_the_steps_before_it_stay_valid(tmp_path, capsys):
    # balance before tag: the corpus has no concepts yet, so balance refuses it
    text = SMALL.replace("  - step: tag\n    threshold: 0.8\n", "").replace(
        "max-per-concept: 3\n", "max-per-concept: 3\n  - step: tag\n"
    )
    path = write(tmp_path, text)
    out = tmp_path / "out"
    code, printed = build(capsys, path)
    assert code == 2
    assert "medcorpus balance: error: [corpus_untagged]" in printed
    assert (
        "medcorpus build: error: [build_step_failed] step balance failed (exit status 2; its error is above). "
        "The steps before it are complete and recorded (pmc)"
    ) in printed
    assert json.loads((out / "pmc" / "manifest.json").read_text())["reconciled"]
    assert not (out / "balance").exists() and not (out / "tag").exists()
    state = json.loads((out / "build-state.json").read_text())["steps"]
    assert (state["pmc"]["status"], state["balance"]["status"]) == ("done", "started")

    # fixed: the finished step is not paid for twice
    Path(path).write_text(filled(SMALL, out))
    code, printed = build(capsys, path)
    assert code == 0, printed
    assert "[1/3] pmc: skipped (up to date" in printed and "2 step(s) ran" in printed


def test_beam_options_reach_every_pipeline_step(tmp_path, capsys):
    """A runner Beam does not have fails the step that gets it: the file's options reach the pipeline,
    and the command line's replace them."""
    path = write(tmp_path, SMALL.replace("direct_running_mode: multi_threading", "runner: NoSuchRunner"))
    code, printed = build(capsys, path)
    assert code == 2 and "Unexpected pipeline runner: NoSuchRunner" in printed
    code, printed = build(capsys, path, "--runner", "OtherRunner")
    assert code == 2 and "Unexpected pipeline runner: OtherRunner" in printed
    code, printed = build(capsys, path, "--runner", "FnApiRunner")
    assert code == 0 and "3 step(s) ran" in printed, printed
    with pytest.raises(SystemExit) as exited:  # what argparse does with an option nobody defines
        build(capsys, path, "--no_such_beam_option", "1")
    assert exited.value.code == 2
    assert "unrecognised arguments: --no_such_beam_option" in capsys.readouterr().err


def test_force_names_a_step(tmp_path, capsys):
    code, printed = build(capsys, write(tmp_path, SMALL), "--force", "tagg", "--dry-run")
    assert code == 2 and "--force tagg: no such step (pmc, tag, balance)" in printed


# the bundled demo build


def test_the_demo_build_file_is_the_readme_example_and_loads(monkeypatch):
    readme = (ROOT / "README.md").read_text()
    demo = (SAMPLE / "demo.yaml").read_text()
    assert f"```yaml\n{demo}```" in readme
    monkeypatch.chdir(ROOT)
    spec = load_spec("sample_data/demo.yaml")
    assert [s.name for s in spec.steps] == [
        "pmc", "pmc-legacy", "classification", "corpus", "corpus-tagged", "corpus-balanced", "run", "eval",
    ]  # fmt: skip
    assert spec.step("eval").reads == ("corpus-balanced", "run")
    assert "--checkpoint" in spec.step("eval").options and not spec.step("run").beam
