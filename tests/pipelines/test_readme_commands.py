"""Every `medcorpus` command in the README is run by a test.

The ones on bundled data run for real, in the README's order, in a temporary folder where `make demo`'s
first two corpora exist (`out/demo/pmc`, `out/demo/classification`). The ones on data a user brings
(`/data/...`, `s3://`, `gs://`, `corpora/...`) are parsed by the real command line: a renamed or
mistyped option in the README fails here.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from pipelines.cli import build_parser, main, unknown_pipeline_options

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ("sample_data/", "out/", "runs/demo", "my_ids.txt")


def readme_commands() -> list[list[str]]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s#\s", line)[0].strip()
            if " ... " in line:  # an elided example ("medcorpus train ... --resume latest")
                continue
            if line.startswith("medcorpus "):
                commands.append(shlex.split(line)[1:])
            elif "-m pipelines.cli " in line:
                commands.append(shlex.split(line.split("-m pipelines.cli ", 1)[1]))
    return commands


def runs_here(argv: list[str]) -> bool:
    paths = [a for a in argv if "/" in a or a.endswith(".txt")]
    return bool(paths) and all(a.startswith(BUNDLED) for a in paths)


def test_the_readme_has_commands_of_both_kinds():
    commands = readme_commands()
    assert len(commands) >= 15
    assert sum(map(runs_here, commands)) >= 5


@pytest.mark.parametrize("argv", readme_commands(), ids=lambda a: " ".join(a)[:60])
def test_every_readme_command_parses(argv):
    args, extra = build_parser().parse_known_args(argv)
    unknown = unknown_pipeline_options(extra) if getattr(args, "accepts_pipeline_options", False) else extra
    assert not unknown, f"the README passes options the command does not know: {unknown}"


@pytest.mark.slow
def test_the_readme_commands_on_bundled_data_run(tmp_path, monkeypatch):
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    (tmp_path / "my_ids.txt").write_text("PMC1790863\nPMC3166277\n")
    monkeypatch.chdir(tmp_path)
    demo = [
        ["ingest", "pmc", "--source", "sample_data/pmc-cloud", "--out", "out/demo/pmc", "--splits", "60/20/20"],
        [
            "ingest", "classification", "--dataset", "sample_data/classification/manifest.csv",
            "--card", "sample_data/classification/card.yaml", "--out", "out/demo/classification",
            "--cache-dir", "none",
        ],
    ]  # fmt: skip
    for argv in demo:
        assert main(argv) == 0, argv
    ran = []
    for argv in filter(runs_here, readme_commands()):
        if argv[0] == "build":
            continue  # test_the_readme_build_commands_run: the whole demo, in a folder of its own
        if "PortableRunner" in argv:
            continue  # needs a worker pool: tests/pipelines/test_portable_runner.py starts one and runs it
        if "classification" in argv and "--cache-dir" not in argv:
            argv = [*argv, "--cache-dir", os.fspath(tmp_path / "cache")]  # not the user's ~/.cache
        assert main(argv) == 0, argv
        ran.append(argv[0])
    assert {"ingest", "dedupe", "tag", "train"} <= set(ran)


@pytest.mark.slow
def test_the_readme_build_commands_run(tmp_path, monkeypatch):
    """`medcorpus build` of the demo file, in the README's order, in a folder of its own: it writes all of
    out/demo/, where the commands above expect only `make demo`'s first two corpora."""
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    monkeypatch.chdir(tmp_path)
    builds = [argv for argv in filter(runs_here, readme_commands()) if argv[0] == "build"]
    assert len(builds) >= 3
    for argv in builds:
        assert main(argv) == 0, argv
    assert (tmp_path / "out" / "demo" / "eval.json").is_file()
