"""The README's Dataflow and Flink commands are complete: Beam itself accepts them.

They cannot run here (no GCP project, no Flink cluster, no network). Each is expanded with the values of
the README's own `export PROJECT=... REGION=... BUCKET=...` line, parsed by the real medcorpus command
line, and its Beam options are checked: for Dataflow by Beam's own `PipelineOptionsValidator` for the
DataflowRunner (in dry-run mode, which skips its one network call), plus what a custom-container job
needs; for Flink, the options the portable Flink runner needs. Every path a worker opens must be a URL.
(`tests/pipelines/test_readme_commands.py` parses every README command as well; the PortableRunner one
runs in `tests/pipelines/test_portable_runner.py`.)
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from apache_beam.options import pipeline_options as beam_options
from apache_beam.options.pipeline_options import (
    DebugOptions,
    FlinkRunnerOptions,
    GoogleCloudOptions,
    PipelineOptions,
    PortableOptions,
    SetupOptions,
    StandardOptions,
    WorkerOptions,
)
from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator

from pipelines.cli import PATH_OPTIONS, build_parser, unknown_pipeline_options

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def bash_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        lines += [re.split(r"\s#\s", line)[0].strip() for line in block.replace("\\\n", " ").splitlines()]
    return lines


def exported() -> dict[str, str]:
    [line] = [line for line in bash_lines() if line.startswith("export PROJECT=")]
    return dict(item.split("=", 1) for item in shlex.split(line)[1:])


def expand(text: str) -> str:
    values = exported()
    return re.sub(r"\$(\w+)", lambda m: values[m[1]], text)


def commands(runner: str) -> list[list[str]]:
    return [
        shlex.split(expand(line))[1:]
        for line in bash_lines()
        if line.startswith("medcorpus ") and f"--runner {runner}" in line
    ]


def parsed(argv: list[str]):
    args, extra = build_parser().parse_known_args(argv)
    assert getattr(args, "accepts_pipeline_options", False), argv
    assert not unknown_pipeline_options(extra), argv
    return args, PipelineOptions(extra)


def worker_paths(args) -> list[str]:
    paths = []
    for name in PATH_OPTIONS:
        value = getattr(args, name, None)
        if value is not None and str(value).lower() != "none":
            paths += value if isinstance(value, list) else [value]
    return paths


def built_images() -> set[str]:
    images = set()
    for line in bash_lines():
        if line.startswith("docker build "):
            args = shlex.split(expand(line))
            images.add(args[args.index("-t") + 1])
    return images


def test_the_readme_has_dataflow_and_flink_commands():
    assert len(commands("DataflowRunner")) >= 3 and len(commands("FlinkRunner")) >= 1
    assert {"PROJECT", "REGION", "BUCKET"} <= set(exported())


@pytest.mark.parametrize("argv", commands("DataflowRunner"), ids=lambda a: " ".join(a[:2]))
def test_a_dataflow_command_passes_beams_validation(argv):
    args, options = parsed(argv)
    options.view_as(StandardOptions).runner = "DataflowRunner"
    from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner

    options.view_as(
        beam_options.TestOptions
    ).dry_run = True  # skips the bucket's soft-delete lookup (network)
    assert PipelineOptionsValidator(options, DataflowRunner()).validate() == []
    cloud, worker = options.view_as(GoogleCloudOptions), options.view_as(WorkerOptions)
    for required in ("project", "region", "temp_location", "staging_location", "job_name"):
        assert getattr(cloud, required), f"--{required} missing: {shlex.join(argv)}"
    assert worker.sdk_container_image in built_images(), "the worker image is one the README builds"
    assert options.view_as(SetupOptions).sdk_location == "container"  # the image has the SDK: stage none
    for path in worker_paths(args):
        assert path.startswith(("gs://", "s3://")), f"a Dataflow worker cannot read {path}"


def test_the_vllm_command_runs_one_engine_per_gpu_worker():
    [argv] = [a for a in commands("DataflowRunner") if "vllm" in a]
    _, options = parsed(argv)
    worker = options.view_as(WorkerOptions)
    assert worker.sdk_container_image.split("/")[-1].startswith("gpu-worker:")
    assert options.view_as(DebugOptions).number_of_worker_harness_threads == 1
    assert "no_use_multiple_sdk_containers" in options.view_as(DebugOptions).experiments
    service = " ".join(options.view_as(GoogleCloudOptions).dataflow_service_options or [])
    assert "worker_accelerator=type:nvidia-l4" in service and "install-nvidia-driver" in service
    assert worker.machine_type.startswith("g2-")  # L4 GPUs come with G2 machines only


@pytest.mark.parametrize("argv", commands("FlinkRunner"), ids=lambda a: " ".join(a[:2]))
def test_a_flink_command_names_its_cluster_and_worker_pool(argv):
    args, options = parsed(argv)
    flink, portable = options.view_as(FlinkRunnerOptions), options.view_as(PortableOptions)
    assert flink.flink_master and flink.flink_version in FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS
    assert portable.environment_type == "EXTERNAL"
    # The worker image's `--worker_pool` entrypoint listens on 50000, beside each TaskManager.
    assert portable.environment_config == "localhost:50000"
    assert any(line.startswith("docker run") and line.endswith("--worker_pool") for line in bash_lines())
    for path in worker_paths(args):
        assert path.startswith(("gs://", "s3://")), f"a Flink worker cannot read {path}"
