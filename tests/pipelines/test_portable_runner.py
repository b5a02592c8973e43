"""Every corpus pipeline on Beam's PortableRunner, with SDK workers in processes of their own.

Dataflow, Flink and Spark run the Python SDK harness in worker processes fed by a job service, in other
folders (on other machines) than the launcher, sharing no module state with it. Here the job service is
Beam's embedded Python one (`--job_endpoint embed`) and the harnesses are started by an external worker
pool (`python -m apache_beam.runners.worker.worker_pool_main`, `--environment_type EXTERNAL`) that this
module starts in a folder of its own, with a cache folder of its own; the launcher runs in another folder
and names every input by a relative path. `ingest pmc`, `ingest classification`, `dedupe`, `tag` and
`balance` must each write shards byte-identical to the same command on the in-process runner, with the
same stage counts (Beam metrics, which reach the launcher through the job service).

`tag` reads the concept KB from a `file://` URL, standing in for `gs://` (no network here): each
machine copies it once into its own cache, so the workers' cache must hold exactly one copy.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from curation.concepts import default_kb_dir
from curation.concepts.kb import META_FILE
from pipelines.cli import main

ROOT = Path(__file__).resolve().parents[2]
README_PORT = "50000"  # the port the README's commands use; the tests use a free one

# (name, argv) in run order; `{mode}` is `local` or `portable`, `{kb}` the KB's file:// URL.
COMMANDS = [
    ("pmc", "ingest pmc --source sample_data/pmc-cloud --out out/{mode}/pmc"),
    (
        "classification",
        "ingest classification --dataset sample_data/classification/manifest.csv "
        "--card sample_data/classification/card.yaml --out out/{mode}/classification --cache-dir none",
    ),
    ("dedupe", "dedupe --in out/{mode}/pmc --in out/{mode}/classification --out out/{mode}/corpus"),
    ("tag", "tag --in out/{mode}/corpus --out out/{mode}/tagged --kb {kb}"),
    ("balance", "balance --in out/{mode}/tagged --out out/{mode}/balanced --max-per-concept 3"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def pool_command(port: int | str) -> list[str]:
    return ["python", "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"]


def portable_options(port: int | str) -> list[str]:
    return [
        "--runner", "PortableRunner", "--job_endpoint", "embed",
        "--environment_type", "EXTERNAL", "--environment_config", f"localhost:{port}",
    ]  # fmt: skip


class WorkerPool:
    def __init__(self, port: int, cwd: Path, cache: Path, log: Path):
        self.port, self.cwd, self.cache, self.log = port, cwd, cache, log


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory) -> Iterator[WorkerPool]:
    """Beam's external worker pool in a folder of its own. It starts each SDK harness as `python ...`
    from PATH (as the SDK container does), so this environment's interpreter comes first there."""
    root = tmp_path_factory.mktemp("workers")
    cwd, cache, log = root / "cwd", root / "cache", root / "pool.log"
    cwd.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MEDCORPUS_CACHE": str(cache),
    }
    command = [sys.executable, *pool_command(port)[1:]]
    with log.open("wb") as out:
        # A session of its own: the finalizer ends the pool and the harnesses it started, and no other.
        pool = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_for_port(pool, port, log)
        yield WorkerPool(port, cwd, cache, log)
    finally:
        _stop(pool)


def _wait_for_port(pool: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if pool.poll() is not None:
            pytest.fail(f"the worker pool exited with {pool.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("localhost", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the worker pool did not listen on port {port}:\n{log.read_text()}")


def _stop(pool: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(pool.pid, sig)
        except ProcessLookupError:
            return
        try:
            pool.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def argv_of(template: str, mode: str, kb: str) -> list[str]:
    return shlex.split(template.format(mode=mode, kb=kb))


@pytest.fixture(scope="module")
def runs(worker_pool, tmp_path_factory) -> dict[str, Path]:
    """Every command in a launcher folder other than the workers', on both runners: {mode: out folder}."""
    launcher = tmp_path_factory.mktemp("launcher")
    (launcher / "sample_data").symlink_to(ROOT / "sample_data")
    kb = f"file://{default_kb_dir()}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(launcher)
        for mode, beam in (("local", []), ("portable", portable_options(worker_pool.port))):
            for name, template in COMMANDS:
                code = main([*argv_of(template, mode, kb), *beam])
                assert code == 0, f"{name} on the {mode} runner exited with {code}:\n{_tail(worker_pool)}"
    return {"local": launcher / "out" / "local", "portable": launcher / "out" / "portable"}


def _tail(pool: WorkerPool) -> str:
    return "\n".join(pool.log.read_text(errors="replace").splitlines()[-40:])


def shard_bytes(corpus: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(corpus)): path.read_bytes()
        for folder in ("data", "rejects")
        for path in sorted((corpus / folder).glob("*.parquet"))
    }


NAMES = {"pmc": "pmc", "classification": "classification", "dedupe": "corpus", "tag": "tagged"}
NAMES["balance"] = "balanced"


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
def test_the_portable_run_writes_the_same_shards(runs, name):
    local, portable = (runs[mode] / NAMES[name] for mode in ("local", "portable"))
    expected = shard_bytes(local)
    assert any(path.startswith("data/") for path in expected), f"{name} wrote no pairs"
    got = shard_bytes(portable)
    assert sorted(got) == sorted(expected)
    for path, data in expected.items():
        assert got[path] == data, f"{name}: {path} differs between the runners"
    manifests = [json.loads((corpus / "manifest.json").read_text()) for corpus in (local, portable)]
    assert manifests[0]["stages"] == manifests[1]["stages"]
    assert manifests[1]["reconciled"]


@pytest.mark.slow
def test_the_workers_ran_in_their_own_processes_and_copied_the_kb_once(runs, worker_pool):
    assert "Starting worker with command" in worker_pool.log.read_text(errors="replace")
    copies = list((worker_pool.cache / "remote").iterdir())
    assert len(copies) == 1, copies  # one copy on the worker, however many DoFn instances loaded it
    assert (copies[0] / META_FILE).read_bytes() == (default_kb_dir() / META_FILE).read_bytes()
    assert list(worker_pool.cwd.iterdir()) == []  # nothing written relative to the workers' folder


def readme_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        lines += [line.strip() for line in block.replace("\\\n", " ").splitlines()]
    return lines


def test_the_readme_runs_the_commands_tested_here():
    """The README's portable-runner lines are this module's: its worker pool and its commands (with the
    README's port, and without the KB URL this module adds)."""
    lines = readme_lines()
    assert " ".join(pool_command(README_PORT)) + " &" in lines
    readme = [
        shlex.split(line)[1:] for line in lines if line.startswith("medcorpus ") and "PortableRunner" in line
    ]
    assert readme, "the README shows no PortableRunner command"
    tested = [
        without_kb([*argv_of(t, "portable", "KB"), *portable_options(README_PORT)]) for _, t in COMMANDS
    ]
    for argv in readme:
        assert without_kb(argv) in tested, f"README command not run by this module: {shlex.join(argv)}"


def without_kb(argv: list[str]) -> list[str]:
    if "--kb" not in argv:
        return argv
    at = argv.index("--kb")
    return argv[:at] + argv[at + 2 :]
