"""On-disk cache of LLM calls, keyed by everything that determines the output.

One JSON file per call, named by the SHA-256 of (backend, model, prompt, sampling, schema): a killed run
resumes without regenerating and a rerun is free. Writes are atomic (a temporary file in the same
folder, then `os.replace`; on object stores a single PUT), so several worker processes may share one
cache: readers never see half a file, and two writers of the same key write the same answer. Any fsspec
URL works (a `gs://` cache shared by Dataflow workers).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from typing import Any

import fsspec

from curation.caption_filters import CaptionCandidate
from models.llm.base import CaptionBackend, CaptionRequest, CaptionResult

CACHE_FORMAT = 1


def cache_key(identity: dict[str, Any]) -> str:
    canonical = json.dumps(identity, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class CallCache:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self._local = "file" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )

    def _path(self, key: str) -> str:
        return f"{self.root}/{key[:2]}/{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry, or None when absent or unreadable (a corrupt entry is a miss, rewritten)."""
        try:
            with self.fs.open(self._path(key), "rb") as f:
                entry = json.loads(f.read())
        except (FileNotFoundError, ValueError, OSError):
            return None
        if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
            return None
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> None:
        data = json.dumps({**entry, "format": CACHE_FORMAT}, ensure_ascii=False).encode()
        path = self._path(key)
        if not self._local:
            self.fs.pipe_file(path, data)  # one PUT: atomic on object stores
            return
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
