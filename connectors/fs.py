"""fsspec access for every source: local paths, s3:// (anonymous by default), gs://, https://."""

from __future__ import annotations

import hashlib
import os
from typing import Any
from urllib.parse import urlsplit

import fsspec

from schemas.errors import ReasonError

# Most sources medcorpus reads from S3 (the PMC Cloud Service) are public buckets: sign nothing unless
# the user opts in with MEDCORPUS_S3_ANON=0 (then the usual AWS credential chain applies).
S3_ANONYMOUS = os.environ.get("MEDCORPUS_S3_ANON", "1") != "0"

DEFAULT_MAX_BYTES = 512 * 1024**2


class FetchError(ReasonError):
    """A file could not be read; `reason` is a stable reject code."""


def storage_options(url: str) -> dict[str, Any]:
    if url.startswith("s3://") and S3_ANONYMOUS:
        return {"anon": True}
    return {}


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem for `url` and the path within it."""
    return fsspec.core.url_to_fs(url, **storage_options(url))


def with_protocol(like: str, path: str) -> str:
    """Put back the protocol that `filesystem()` strips, so paths from glob/ls are URLs again."""
    scheme = urlsplit(like).scheme
    if len(scheme) > 1 and not path.startswith(f"{scheme}://"):
        return f"{scheme}://{path}"
    return path


def absolute(url: str) -> str:
    """A local path made absolute (a remote Beam worker runs in another folder); URLs stay as they are."""
    if "://" in url:
        return url
    return os.path.abspath(os.path.expanduser(url))


def exists(url: str) -> bool:
    fsys, path = filesystem(url)
    return fsys.exists(path)


def glob(url: str) -> list[str]:
    """Sorted URLs matching a glob pattern, on any filesystem."""
    fsys, path = filesystem(url)
    return sorted(with_protocol(url, p) for p in fsys.glob(path))


def join(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def split_md5(url: str) -> tuple[str, str | None]:
    """Split PMC's `...?md5=<hex>` URL into the bare URL and the expected digest."""
    parts = urlsplit(url)
    md5 = None
    for item in parts.query.split("&"):
        if item.startswith("md5="):
            md5 = item[4:].lower() or None
    bare = url.split("?", 1)[0]
    return bare, md5


def read_bytes(url: str, max_bytes: int = DEFAULT_MAX_BYTES, expected_md5: str | None = None) -> bytes:
    """Read a whole file, refusing files over `max_bytes` and checking the md5 when one is known."""
    try:
        with fsspec.open(url, "rb", **storage_options(url)) as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise FetchError("file_missing", f"{url}: {exc}") from exc
    except OSError as exc:
        raise FetchError("fetch_failed", f"{url}: {exc}") from exc
    if len(data) > max_bytes:
        raise FetchError("file_too_large", f"{url} is larger than {max_bytes} bytes")
    if expected_md5 is not None:
        actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if actual != expected_md5:
            raise FetchError("md5_mismatch", f"{url}: expected md5 {expected_md5}, got {actual}")
    return data
