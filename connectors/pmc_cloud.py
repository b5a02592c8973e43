"""The PMC Cloud Service layout (`s3://pmc-oa-opendata/`, or a local copy of part of it).

```
PMC<id>.<v>/PMC<id>.<v>.xml          JATS
PMC<id>.<v>/PMC<id>.<v>.json         metadata: pmcid, version, pmid, doi, license_code, is_retracted,
                                      is_pmc_openaccess, xml_url, media_urls[] (each URL has ?md5=<hex>)
PMC<id>.<v>/<media files>
metadata/PMC<id>.<v>.json            the same metadata objects
inventory-reports/pmc-oa-opendata/metadata/<date>/manifest.json   daily S3 inventory of metadata/
```
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

from connectors import fs
from connectors.licenses import license_admitted, normalize_license
from connectors.pmc_source import (
    VERSIONED_RE,
    ArticlePackage,
    ArticleRef,
    ListingUnit,
    MediaFile,
    PackageError,
    SelectionPolicy,
)

INVENTORY_PREFIX = "inventory-reports/pmc-oa-opendata/metadata"
METADATA_MAX_BYTES = 4 * 1024**2
XML_MAX_BYTES = 64 * 1024**2
NON_MEDIA_SUFFIXES = (".xml", ".json", ".txt", ".pdf")


def listing_units(root: str, pmcids: list[str] | None = None, listing: str = "auto") -> list[ListingUnit]:
    """How to list the articles under `root`: per PMCID, from the newest inventory, or by prefix."""
    if pmcids is not None:
        return [ListingUnit("cloud_pmcid", root, p) for p in pmcids]
    filesystem, path = fs.filesystem(root)
    if listing in ("auto", "inventory"):
        units = _inventory_units(root)
        if units:
            return units
        if listing == "inventory":
            raise PackageError(
                "source_unrecognised", f"no S3 inventory under {fs.join(root, INVENTORY_PREFIX)}"
            )
    if filesystem.exists(fs.join(path, "metadata")):
        return [ListingUnit("cloud_prefix", root, "metadata")]
    return [ListingUnit("cloud_prefix", root, "")]


def _inventory_units(root: str) -> list[ListingUnit]:
    filesystem, path = fs.filesystem(root)
    base = fs.join(path, INVENTORY_PREFIX)
    if not filesystem.exists(base):
        return []
    # Date folders sort chronologically by name (2026-11-26T01-00Z); take the newest complete one.
    dates = sorted(
        p for p in filesystem.ls(base, detail=False) if filesystem.exists(fs.join(p, "manifest.json"))
    )
    if not dates:
        return []
    manifest_url = fs.with_protocol(root, fs.join(dates[-1], "manifest.json"))
    manifest = json.loads(fs.read_bytes(manifest_url, max_bytes=METADATA_MAX_BYTES))
    if manifest.get("fileFormat", "CSV").upper() != "CSV":
        raise PackageError("source_unrecognised", f"{manifest_url}: only CSV inventories are supported")
    columns = [c.strip() for c in manifest.get("fileSchema", "Bucket, Key").split(",")]
    key_column = columns.index("Key")
    return [
        ListingUnit("inventory_csv", root, f"{key_column}:{fs.join(root, entry['key'])}")
        for entry in sorted(manifest.get("files", []), key=lambda e: e["key"])
    ]


def refs_in_unit(unit: ListingUnit) -> Iterator[ArticleRef]:
    if unit.kind == "inventory_csv":
        yield from _refs_from_inventory(unit)
    elif unit.kind == "cloud_prefix":
        yield from _refs_from_prefix(unit.root, unit.arg)
    elif unit.kind == "cloud_pmcid":
        yield from _refs_for_pmcid(unit.root, unit.arg)
    else:
        raise ValueError(f"not a cloud listing unit: {unit.kind}")


def _ref_from_key(root: str, key: str) -> ArticleRef | None:
    """A reference from a metadata key (`metadata/PMC1.2.json`) or a version folder (`PMC1.2`)."""
    name = key.rstrip("/").rsplit("/", 1)[-1]
    m = VERSIONED_RE.fullmatch(name.removesuffix(".json"))
    if not m:
        return None
    pmcid, version = m.group(1), int(m.group(2))
    if name.endswith(".json"):
        path = fs.join(root, key)
    else:
        path = fs.join(root, key, f"{pmcid}.{version}.json")
    return ArticleRef(pmcid=pmcid, version=version, layout="cloud", root=root, path=path)


def _refs_from_inventory(unit: ListingUnit) -> Iterator[ArticleRef]:
    column_text, url = unit.arg.split(":", 1)
    column = int(column_text)
    raw = fs.read_bytes(url)
    text = gzip.decompress(raw).decode() if url.endswith(".gz") else raw.decode()
    for row in csv.reader(io.StringIO(text)):
        if len(row) > column:
            # S3 inventories URL-encode object keys.
            ref = _ref_from_key(unit.root, unquote(row[column]))
            if ref is not None:
                yield ref


def _refs_from_prefix(root: str, prefix: str) -> Iterator[ArticleRef]:
    filesystem, path = fs.filesystem(root)
    base = fs.join(path, prefix) if prefix else path.rstrip("/")
    pattern = f"{base}/PMC*.json" if prefix == "metadata" else f"{base}/PMC*.*"
    for found in sorted(filesystem.glob(pattern)):
        relative = found[len(path.rstrip("/")) + 1 :] if found.startswith(path.rstrip("/")) else found
        ref = _ref_from_key(root, relative)
        if ref is not None:
            yield ref


def _refs_for_pmcid(root: str, pmcid: str) -> Iterator[ArticleRef]:
    filesystem, path = fs.filesystem(root)
    if filesystem.exists(fs.join(path, "metadata")):
        yield from (r for r in _glob_refs(root, f"metadata/{pmcid}.*.json") if r.pmcid == pmcid)
    else:
        yield from (r for r in _glob_refs(root, f"{pmcid}.*") if r.pmcid == pmcid)


def _glob_refs(root: str, pattern: str) -> Iterator[ArticleRef]:
    filesystem, path = fs.filesystem(root)
    base = path.rstrip("/")
    for found in sorted(filesystem.glob(f"{base}/{pattern}")):
        ref = _ref_from_key(root, found[len(base) + 1 :])
        if ref is not None:
            yield ref


def locate(root: str, url: str) -> str:
    """Where a URL from the metadata (`s3://pmc-oa-opendata/PMC1.1/x.jpg`) lives under `root`.

    The object key is kept and the bucket replaced by the root, so a local mirror, an https endpoint
    and the bucket itself all work.
    """
    parts = urlsplit(url)
    if parts.scheme in ("s3", "gs", "http", "https"):
        return fs.join(root, unquote(parts.path).lstrip("/"))
    return fs.join(root, url)


def read_metadata(ref: ArticleRef) -> dict:
    try:
        data = fs.read_bytes(ref.path, max_bytes=METADATA_MAX_BYTES)
    except fs.FetchError as exc:
        reason = "metadata_missing" if exc.reason == "file_missing" else exc.reason
        raise PackageError(reason, exc.detail) from exc
    try:
        meta = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError("metadata_invalid", f"{ref.path}: {exc}") from exc
    if not isinstance(meta, dict):
        raise PackageError("metadata_invalid", f"{ref.path}: expected a JSON object")
    if str(meta.get("pmcid", "")).upper() != ref.pmcid:
        raise PackageError("metadata_invalid", f"{ref.path} describes {meta.get('pmcid')!r}, not {ref.pmcid}")
    return meta


def open_article(ref: ArticleRef, policy: SelectionPolicy) -> ArticlePackage:
    meta = read_metadata(ref)
    if meta.get("is_retracted") and not policy.include_retracted:
        raise PackageError("retracted", f"{ref.pmcid}.{ref.version} is marked retracted")
    if policy.require_open_access and meta.get("is_pmc_openaccess") is False:
        raise PackageError("not_open_access", f"{ref.pmcid}.{ref.version} is not in the Open Access Subset")
    license_code = normalize_license(meta.get("license_code"))
    if not license_admitted(license_code, policy.license):
        raise PackageError(
            "license_excluded", f"licence {license_code!r} is outside --license {policy.license}"
        )

    folder = fs.join(ref.root, f"{ref.pmcid}.{ref.version}")
    xml_url = meta.get("xml_url")
    if xml_url:
        bare, md5 = fs.split_md5(xml_url)
        location = locate(ref.root, bare)
    else:
        location, md5 = fs.join(folder, f"{ref.pmcid}.{ref.version}.xml"), None
    try:
        xml = fs.read_bytes(location, max_bytes=XML_MAX_BYTES, expected_md5=md5)
    except fs.FetchError as exc:
        reason = "xml_missing" if exc.reason == "file_missing" else exc.reason
        raise PackageError(reason, exc.detail) from exc

    media: dict[str, MediaFile] = {}
    if meta.get("media_urls"):
        for url in meta["media_urls"]:
            bare, md5 = fs.split_md5(url)
            media[bare.rsplit("/", 1)[-1]] = MediaFile(url=locate(ref.root, bare), md5=md5)
    else:
        # A synced folder without media_urls: take what is on disk, unverified.
        filesystem, path = fs.filesystem(folder)
        for found in filesystem.ls(path, detail=False):
            name = found.rsplit("/", 1)[-1]
            if not name.lower().endswith(NON_MEDIA_SUFFIXES):
                media[name] = MediaFile(url=fs.join(folder, name))

    pmid = meta.get("pmid")
    return ArticlePackage(
        ref=ref,
        xml=xml,
        license=license_code,
        pmid=str(pmid) if pmid not in (None, "") else None,
        doi=meta.get("doi") or None,
        media=media,
    )
