"""On-disk cache of LLM calls, keyed by everything that determines the output.

One JSON file per call, named by the SHA-256 of (backend, model, prompt, sampling, schema): a killed run
resumes without regenerating and a rerun is free. Writes are atomic (a temporary file in the same
folder, then `os.replace`; on object stores a single PUT), so several worker processes may share one
cache: readers never see half a file, and two writers of the same key write the same answer. Any fsspec
URL works (a `gs://` cache shared by Dataflow workers). A remote cache is mirrored on each machine's local
disk (`$MEDCORPUS_CACHE/caption-mirror/<hash of the URL>`): an entry read or written once is answered
locally after that, by every process of the worker. Entries are named by the hash of what determines
them, so a mirrored entry never goes stale.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from typing import Any

import fsspec

from connectors.local_copy import default_cache_root
from curation.caption_filters import CaptionCandidate
from models.llm.base import CaptionBackend, CaptionRequest, CaptionResult

CACHE_FORMAT = 1


def cache_key(identity: dict[str, Any]) -> str:
    canonical = json.dumps(identity, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class CallCache:
    """`mirror`: a local folder that keeps a copy of a remote cache's entries; default
    `$MEDCORPUS_CACHE/caption-mirror/<hash of the URL>` for a remote URL (resolved where the cache is made:
    on a worker, the worker's disk), none for a local one."""

    def __init__(self, url: str, mirror: str | os.PathLike[str] | None = None):
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self._local = "file" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )
        if mirror is None and not self._local:
            digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
            mirror = default_cache_root() / "caption-mirror" / digest
        self.mirror = os.fspath(mirror) if mirror is not None else None

    def _path(self, key: str) -> str:
        return f"{self.root}/{key[:2]}/{key}.json"

    def _mirror_path(self, key: str) -> str:
        return os.path.join(self.mirror or "", key[:2], f"{key}.json")

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry, or None when absent or unreadable (a corrupt entry is a miss, rewritten)."""
        if self.mirror is not None:
            entry = _read_entry(_local_fs(), self._mirror_path(key))
            if entry is not None:
                return entry
        entry = _read_entry(self.fs, self._path(key))
        if entry is not None and self.mirror is not None:
            _write_atomic(self._mirror_path(key), _encode(entry))
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> None:
        data = _encode(entry)
        if self._local:
            _write_atomic(self._path(key), data)
            return
        self.fs.pipe_file(self._path(key), data)  # one PUT: atomic on object stores
        if self.mirror is not None:
            _write_atomic(self._mirror_path(key), data)


def _encode(entry: dict[str, Any]) -> bytes:
    return json.dumps({**entry, "format": CACHE_FORMAT}, ensure_ascii=False).encode()


def _local_fs() -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("file")


def _read_entry(fsys: fsspec.AbstractFileSystem, path: str) -> dict[str, Any] | None:
    try:
        with fsys.open(path, "rb") as f:
            entry = json.loads(f.read())
    except (FileNotFoundError, ValueError, OSError):
        return None
    if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
        return None
    return entry


def _write_atomic(path: str, data: bytes) -> None:
    """A temporary file in the same folder, then a rename: readers never see half an entry."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class CachedBackend:
    """Wraps a backend: requests found in the cache are answered from it, the rest go to the backend in
    one batch and are stored (errors are not stored, so a rerun retries them)."""

    def __init__(self, backend: CaptionBackend, cache: CallCache):
        self.backend = backend
        self.cache = cache
        self.name = backend.name
        self.text_model = backend.text_model

    def cache_identity(self, request: CaptionRequest) -> dict[str, Any] | None:
        return self.backend.cache_identity(request)

    def generate(self, requests: list[CaptionRequest]) -> list[CaptionResult]:
        results: list[CaptionResult | None] = [None] * len(requests)
        keys: list[str | None] = []
        misses: list[int] = []
        for i, request in enumerate(requests):
            identity = self.backend.cache_identity(request)
            key = cache_key(identity) if identity is not None else None
            keys.append(key)
            entry = self.cache.get(key) if key else None
            if entry is not None:
                candidates = [CaptionCandidate(**c) for c in entry["candidates"]]
                results[i] = CaptionResult(request, candidates, entry["text_model"], cached=True)
            else:
                misses.append(i)
        if misses:
            fresh = self.backend.generate([requests[i] for i in misses])
            for i, result in zip(misses, fresh, strict=True):
                results[i] = result
                key = keys[i]
                if key and result.error is None:
                    self.cache.put(
                        key,
                        {
                            "identity": self.backend.cache_identity(requests[i]),
                            "text_model": result.text_model,
                            "candidates": [asdict(c) for c in result.candidates],
                        },
                    )
        return [r for r in results if r is not None]

    def close(self) -> None:
        self.backend.close()
