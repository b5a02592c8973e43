"""What identifies a step's inputs and its output, so that a rerun can tell what changed.

- a corpus: its `manifest.json` (which records inputs, options, versions, counts and shard names),
  without the wall time, so a corpus rebuilt to the same content has the same digest and the steps
  that read it need not run again;
- a training run: the names, sizes and modification times of its files;
- an evaluation: its JSON file's bytes;
- a local file a step reads (a dataset card, a manifest, a PMCID list): its bytes; a local folder (a
  PMC mirror, an image folder): the names, sizes and modification times of its files;
- anything remote (`s3://`, `gs://`, `https://`): its URL only; `medcorpus build --force STEP`
  reruns a step whose remote source changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from typing import Any

from connectors import fs
from connectors.corpus import MANIFEST
from pipelines.buildfile.spec import Step

# Manifest fields that differ between two runs that wrote the same corpus.
VOLATILE_MANIFEST_KEYS = ("wall_time_s",)


def output_digest(step: Step) -> str | None:
    """The digest of what the step wrote; None when it is not there (or not finished)."""
    if step.output_kind == "corpus":
        return corpus_digest(step.output)
    if step.output_kind == "run":
        # train writes summary.json once the run is complete
        return (
            _folder_digest(step.output) if os.path.isfile(os.path.join(step.output, "summary.json")) else None
        )
    return _file_digest(step.output) if os.path.isfile(step.output) else None


def corpus_digest(corpus: str) -> str | None:
    """The digest of a corpus's manifest without its wall time; None without a manifest."""
    url = fs.join(corpus, MANIFEST)
    if not fs.exists(url):
        return None
    filesystem, path = fs.filesystem(url)
    with filesystem.open(path) as f:
        manifest = json.load(f)
    for key in VOLATILE_MANIFEST_KEYS:
        manifest.pop(key, None)
    return _sha(json.dumps(manifest, sort_keys=True))


def input_digest(path: str) -> str:
    """The digest of a file or folder a step reads that no step of the build writes."""
    if "://" in path:
        return path
    if os.path.isfile(os.path.join(path, MANIFEST)):  # a corpus built elsewhere
        return corpus_digest(path) or path
    if os.path.isdir(path):
        return _folder_digest(path)
    if os.path.isfile(path):
        return _file_digest(path)
    return "missing"


def medcorpus_version() -> str:
    try:
        return metadata.version("medcorpus")
    except metadata.PackageNotFoundError:
        return "unknown"


def _folder_digest(root: str) -> str:
    entries: list[Any] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            stat = os.stat(os.path.join(folder, name))
            entries.append(
                [os.path.relpath(os.path.join(folder, name), root), stat.st_size, stat.st_mtime_ns]
            )
    return _sha(json.dumps(entries))


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
