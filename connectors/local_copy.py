"""Remote inputs that a worker loads whole (a concept KB folder), copied once to the machine's local disk.

On Dataflow, Flink or Spark the workers share no disk with the launcher, so such an input lives on
`gs://` / `s3://` (any fsspec URL). Libraries like scispacy and nmslib only open local files, and every
DoFn instance on every SDK process of a worker loads the KB: `local_copy` downloads it once into a cache
folder on the worker (`$MEDCORPUS_CACHE/remote`, else `~/.cache/medcorpus/remote`), named by the URL and
a fingerprint of what is there (each file's path, size and etag / generation / mtime as the filesystem
reports it). Later calls find the copy and reuse it; a changed remote input gets a fresh copy beside
the old one. A copy is written under a temporary name and renamed into place, so processes that race
on one machine both end with a complete copy and a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from connectors import fs

log = logging.getLogger(__name__)

# Fields that change when a remote file's content changes, as the fsspec implementations name them
# (gcsfs: generation, md5Hash, etag; s3fs: ETag, LastModified; local: mtime; memory: created).
VERSION_FIELDS = ("generation", "md5Hash", "etag", "ETag", "LastModified", "updated", "mtime", "created")

# One download at a time per process: threads of one SDK worker share the copy instead of racing.
_COPY_LOCK = threading.Lock()


def default_cache_root() -> Path:
    """$MEDCORPUS_CACHE, else ~/.cache/medcorpus: resolved where it runs (on a worker, the worker's)."""
    env = os.environ.get("MEDCORPUS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "medcorpus"


def is_remote(url: str | os.PathLike[str]) -> bool:
    """A URL (`gs://`, `s3://`, `file://`, ...) rather than a plain local path; `file://` counts, as it
    stands for a mount that only some machines may have."""
    return "://" in os.fspath(url)


def remote_files(url: str) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Whether `url` is a folder, and each file under it (or `url` itself when it is a file):
    {path relative to the folder (the file's name for a file): fsspec info}."""
    fsys, root = fs.filesystem(url)
    root = root.rstrip("/")
    if not fsys.exists(root):
        raise FileNotFoundError(f"{url} does not exist")
    if not fsys.isdir(root):
        return False, {root.rsplit("/", 1)[-1]: fsys.info(root)}
    prefix = root + "/"
    found = fsys.find(root, detail=True)
    return True, {
        path[len(prefix) :]: info
        for path, info in sorted(found.items())
        if info.get("type") != "directory" and path.startswith(prefix)
    }


def fingerprint(url: str, files: dict[str, dict[str, Any]]) -> str:
    """A digest of the URL and each file's path, size and version fields."""
    entries = {
        rel: [info.get("size"), {k: str(info[k]) for k in VERSION_FIELDS if info.get(k) is not None}]
        for rel, info in files.items()
    }
    canonical = json.dumps({"url": url, "files": entries}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def local_copy(url: str | os.PathLike[str], cache_root: str | os.PathLike[str] | None = None) -> Path:
    """A local path for `url`: a plain path as it is; a URL copied once into the cache (see the module
    docstring) and the copy's path (the folder, or the file for a single-file URL)."""
    if not is_remote(url):
        return Path(url)
    url = os.fspath(url).rstrip("/")
    is_dir, files = remote_files(url)
    if not files:
        raise FileNotFoundError(f"{url} holds no files")
    digest = fingerprint(url, files)
    base = Path(cache_root) if cache_root is not None else default_cache_root() / "remote"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", url.rsplit("/", 1)[-1]) or "root"
    target = base / f"{name}-{digest[:16]}"
    result = target if is_dir else target / next(iter(files))
    with _COPY_LOCK:
        if target.is_dir():
            return result
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.copy-", dir=base))
        try:
            fsys, root = fs.filesystem(url)
            root = root.rstrip("/")
            total = 0
            for rel, info in files.items():
                local = tmp / rel
                local.parent.mkdir(parents=True, exist_ok=True)
                fsys.get_file(f"{root}/{rel}" if is_dir else root, os.fspath(local))
                size = local.stat().st_size
                if info.get("size") is not None and size != info["size"]:
                    # Changed while being copied: the fingerprint no longer names this content.
                    raise OSError(f"{url}/{rel} changed during the copy ({info['size']} -> {size} bytes)")
                total += size
            try:
                os.rename(tmp, target)
            except OSError:
                if not target.is_dir():  # not a lost race with another process: a real failure
                    raise
            else:
                log.info("copied %s (%d files, %d bytes) to %s", url, len(files), total, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return result
