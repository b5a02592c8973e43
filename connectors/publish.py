"""Writing a corpus so that no failure leaves a half-written or destroyed one.

A run writes everything into a staging folder beside `--out` (`.<name>.staging-<id>`) and publishes it
only when it succeeded (`publish`): the old corpus's manifest is removed first, then the files the old
corpus owned, then the new files are moved in, the new `manifest.json` last. The manifest is the commit
marker: a folder whose medcorpus shards have no manifest is an interrupted run, and every reader refuses
it (`connectors.corpus.data_shards`). A run that fails before publishing leaves the old corpus as it was, and its
staging folder is removed.

Local folders publish by `rename`, one file at a time. Object stores (`gs://`, `s3://`) have no rename:
fsspec's move is a copy then a delete, so publishing takes longer there, but the order is the same and
the manifest still goes last, so a reader never takes a half-published corpus for a complete one.

`--overwrite` removes only what the old corpus owned: the shards its manifest lists (or, without a
manifest, files named like medcorpus shards and their temporary files), its card, manifest, croissant.json
and report.html. Any other file in the folder, and the `embeddings/` cache, are left alone.
"""

from __future__ import annotations

import logging
import os
import re
import uuid

from connectors import fs
from connectors.corpus import CARD, DATA_DIR, MANIFEST, REJECTS_DIR, CorpusFolderError, read_manifest

log = logging.getLogger(__name__)

# Written beside the card by every run (connectors.corpus_documents); an old one never outlives its corpus.
DOCUMENTS = ("croissant.json", "report.html")
_SHARD_NAME = re.compile(r"^[A-Za-z0-9_.]+-\d{5}-of-\d{5}\.parquet(\.tmp-[0-9a-f]{32})?$")


def _normal(url: str) -> str:
    """A comparable form: local paths absolute with links resolved, URLs without a trailing slash."""
    url = url.removeprefix("file://")
    return os.path.realpath(fs.absolute(url)) if "://" not in url else url.rstrip("/")


def same_or_nested(a: str, b: str) -> bool:
    """Whether two folders are the same or one lies inside the other."""
    a, b = _normal(a), _normal(b)
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def check_output(out: str, inputs: list[str], overwrite: bool) -> None:
    """Refuse an output that is (or holds, or lies inside) an input, or that holds a corpus without
    `--overwrite`."""
    for source in inputs:
        if same_or_nested(source, out):
            raise CorpusFolderError(
                "output_overlaps_input",
                f"--out {out} is, holds or lies inside the input {source}: write the result to a new folder",
            )
    filesystem, path = fs.filesystem(out)
    present = [n for n in (MANIFEST, CARD) if filesystem.exists(fs.join(path, n))]
    present += [f"{folder}/" for folder in (DATA_DIR, REJECTS_DIR) if _owned_shards(out, folder, None)]
    if present and not overwrite:
        raise CorpusFolderError(
            "corpus_exists",
            f"{out} already holds a corpus ({', '.join(present)}); pass --overwrite to replace it",
        )


def staging_dir(out: str) -> str:
    """A fresh staging folder beside `out`; leftovers of interrupted runs into `out` are removed first."""
    scheme, separator, rest = out.rpartition("://") if "://" in out else ("", "", out)
    parent, _, name = rest.rstrip("/").rpartition("/")
    prefix = f"{scheme}{separator}{parent}/" if parent else f"{scheme}{separator}"
    for stale in fs.glob(f"{prefix}.{name}.staging-*"):
        log.info("removing %s, left by an interrupted run", stale)
        remove_staging(stale)
    return f"{prefix}.{name}.staging-{uuid.uuid4().hex[:12]}"


def remove_staging(staging: str) -> None:
    filesystem, path = fs.filesystem(staging)
    if filesystem.exists(path):
        filesystem.rm(path, recursive=True)


def _owned_shards(corpus: str, folder: str, manifest: dict | None) -> list[str]:
    filesystem, path = fs.filesystem(corpus)
    base = fs.join(path, folder)
    if not filesystem.exists(base):
        return []
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in filesystem.ls(base, detail=False)]
    if manifest is not None:
        listed = set(manifest["outputs"]["shards"] if folder == DATA_DIR else manifest["rejects"]["shards"])
        return [fs.join(base, n) for n in names if n in listed or (_SHARD_NAME.match(n) and ".tmp-" in n)]
    return [fs.join(base, n) for n in names if _SHARD_NAME.match(n)]


def publish(staging: str, out: str) -> None:
    """Replace what `out` holds of an old corpus with the staged one, the manifest last."""
    filesystem, out_path = fs.filesystem(out)
    _, stage_path = fs.filesystem(staging)
    filesystem.makedirs(out_path, exist_ok=True)
    manifest_path = fs.join(out_path, MANIFEST)
    try:
        old = read_manifest(out) if filesystem.exists(manifest_path) else None
    except (ValueError, KeyError):
        old = None
    if filesystem.exists(manifest_path):
        filesystem.rm(manifest_path)  # from here on the old corpus is incomplete, never half-new
    for folder in (DATA_DIR, REJECTS_DIR):
        for owned in _owned_shards(out, folder, old):
            filesystem.rm(owned)
    for document in (CARD, *DOCUMENTS):
        if filesystem.exists(fs.join(out_path, document)):
            filesystem.rm(fs.join(out_path, document))
    staged = sorted(p for p in filesystem.find(stage_path) if not p.endswith(f"/{MANIFEST}"))
    for source in staged:
        target = fs.join(out_path, source[len(stage_path.rstrip("/")) + 1 :])
        filesystem.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        filesystem.mv(source, target)
    filesystem.mv(fs.join(stage_path, MANIFEST), manifest_path)
    filesystem.rm(stage_path, recursive=True)


def mark_complete(out: str, pipeline: str, title: str) -> dict:
    """Make a corpus written outside a pipeline run (a generator, a test fixture) complete: a manifest
    that counts the rows on disk as one stage, and its card. Returns the manifest."""
    from connectors.corpus import RunInfo, build_manifest, list_shards, shard_rows, write_manifest
    from connectors.corpus_card import write_card

    pairs = sum(shard_rows(url) for url in list_shards(out, DATA_DIR))
    rejects = sum(shard_rows(url) for url in list_shards(out, REJECTS_DIR))
    stages = {
        pipeline: {"in": pairs, "out": pairs, "rejected": {}, "removed": {}},
        "written": {"pairs": pairs, "rejects": rejects},
    }
    manifest = build_manifest(out, RunInfo(pipeline, {}, {}), stages, pipeline)
    write_manifest(out, manifest)
    write_card(out, manifest, title)
    return manifest
