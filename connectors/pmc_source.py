"""PubMed Central Open Access as a source of article packages, in both distribution layouts.

- The PMC Cloud Service layout (`s3://pmc-oa-opendata/`, today's source): one folder per article
  version `PMC<id>.<v>/` holding the JATS XML, a JSON metadata object and the media files; the JSON
  objects are also under `metadata/`, and a daily S3 inventory lists those keys.
- The legacy layout (`oa_file_list.csv` and `PMC<id>.tar.gz` packages) that users have mirrored.

Listing is split into units (an inventory CSV file, a prefix, a PMCID) so a Beam pipeline can list in
parallel; `open_article` turns one reference into an :class:`ArticlePackage` or raises
:class:`PackageError` with a reject reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from connectors import fs
from schemas.errors import ReasonError

PMCID_RE = re.compile(r"^PMC\d+$")
VERSIONED_RE = re.compile(r"(PMC\d+)\.(\d+)")


class PackageError(ReasonError):
    """An article that cannot be used; `reason` is its reject code."""


@dataclass(frozen=True)
class ArticleRef:
    pmcid: str
    version: int | None
    layout: str  # "cloud" | "legacy"
    root: str  # the source root everything is resolved against
    path: str  # cloud: the metadata JSON; legacy: the package .tar.gz
    license: str | None = None  # legacy: from the file list
    pmid: str | None = None


@dataclass(frozen=True)
class ListingUnit:
    """One independent piece of listing work."""

    kind: str  # "inventory_csv" | "cloud_prefix" | "cloud_pmcid" | "legacy_filelist" | "legacy_glob"
    root: str
    arg: str = ""


@dataclass(frozen=True)
class SelectionPolicy:
    license: str = "all"  # see connectors.licenses.LICENSE_CHOICES
    include_retracted: bool = False
    require_open_access: bool = True


@dataclass(frozen=True)
class MediaFile:
    """Where a media file's bytes are: already in memory (read from a package stream) or at a URL."""

    data: bytes | None = None
    url: str | None = None
    md5: str | None = None
    oversize: bool = False  # seen in a package but larger than the per-file cap, so not kept


@dataclass
class ArticlePackage:
    """An article's XML and access to its media files, after the policy checks passed."""

    ref: ArticleRef
    xml: bytes
    license: str | None
    pmid: str | None = None
    doi: str | None = None
    media: dict[str, MediaFile] = field(default_factory=dict)  # by file name

    @property
    def media_names(self) -> list[str]:
        return sorted(self.media)

    def read_media(self, name: str, max_bytes: int) -> bytes:
        """The bytes of one media file; raises fs.FetchError (file_missing, file_too_large, md5_mismatch...)."""
        entry = self.media.get(name)
        if entry is None:
            raise fs.FetchError("file_missing", f"{name} is not in the package of {self.ref.pmcid}")
        if entry.oversize:
            raise fs.FetchError("file_too_large", f"{name} is larger than the {max_bytes}-byte cap")
        if entry.data is not None:
            if len(entry.data) > max_bytes:
                raise fs.FetchError("file_too_large", f"{name} is larger than the {max_bytes}-byte cap")
            return entry.data
        assert entry.url is not None
        return fs.read_bytes(entry.url, max_bytes=max_bytes, expected_md5=entry.md5)


def normalize_pmcid(text: str) -> str:
    value = text.strip().upper()
    if value.isdigit():
        value = "PMC" + value
    if not PMCID_RE.match(value):
        raise ValueError(f"not a PMCID: {text!r}")
    return value


def read_pmcid_file(url: str) -> list[str]:
    """PMCIDs from a text file, one per line (a CSV's first column also works); '#' starts a comment."""
    text = fs.read_bytes(url).decode("utf-8-sig")
    ids = []
    for line in text.splitlines():
        token = line.split("#", 1)[0].split(",", 1)[0].strip()
        if token and token.lower() not in ("pmcid", "accession id"):
            ids.append(normalize_pmcid(token))
    return sorted(set(ids))


def detect_layout(root: str) -> str:
    """ "cloud" or "legacy", from what the source root holds."""
    filesystem, path = fs.filesystem(root)
    if filesystem.exists(f"{path.rstrip('/')}/oa_file_list.csv"):
        return "legacy"
    if filesystem.exists(f"{path.rstrip('/')}/metadata") or filesystem.exists(
        f"{path.rstrip('/')}/inventory-reports"
    ):
        return "cloud"
    names = [n.rstrip("/").rsplit("/", 1)[-1] for n in filesystem.ls(path, detail=False)]
    if any(VERSIONED_RE.fullmatch(n) for n in names):
        return "cloud"
    if filesystem.glob(f"{path.rstrip('/')}/**/*.tar.gz"):
        return "legacy"
    raise PackageError(
        "source_unrecognised",
        f"{root} holds neither PMC Cloud Service folders (PMC<id>.<v>/, metadata/) nor legacy packages "
        "(oa_file_list.csv, *.tar.gz)",
    )


def listing_units(root: str, pmcids: list[str] | None = None, listing: str = "auto") -> list[ListingUnit]:
    """Units of listing work for `root`. With `pmcids`, cloud sources are looked up per PMCID; legacy
    listings are filtered by the caller (the file list has to be read whole anyway)."""
    from connectors import pmc_cloud, pmc_legacy

    if detect_layout(root) == "cloud":
        return pmc_cloud.listing_units(root, pmcids, listing)
    return pmc_legacy.listing_units(root)


def refs_in_unit(unit: ListingUnit) -> Iterator[ArticleRef]:
    from connectors import pmc_cloud, pmc_legacy

    if unit.kind.startswith("legacy"):
        yield from pmc_legacy.refs_in_unit(unit)
    else:
        yield from pmc_cloud.refs_in_unit(unit)


def newest(a: ArticleRef, b: ArticleRef) -> ArticleRef:
    """The newer of two versions of one article (ties broken by path, so the choice is stable)."""
    return max(a, b, key=lambda r: (r.version or 0, r.path))


def open_article(ref: ArticleRef, policy: SelectionPolicy) -> ArticlePackage:
    from connectors import pmc_cloud, pmc_legacy

    if ref.layout == "cloud":
        return pmc_cloud.open_article(ref, policy)
    return pmc_legacy.open_article(ref, policy)
