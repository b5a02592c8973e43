"""Legacy PMC Open Access packages (`PMC<id>.tar.gz`) and the legacy file list (`oa_file_list.csv`).

Packages are read as a stream, member by member, never extracted to disk. A member whose name (or
link target) is absolute or climbs out with `..` rejects the whole package: nothing legitimate does
that, so it is treated as hostile.
"""

from __future__ import annotations

import csv
import io
import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import PurePosixPath

import fsspec

from connectors import fs
from connectors.licenses import license_admitted, normalize_license
from connectors.pmc_source import (
    ArticlePackage,
    ArticleRef,
    ListingUnit,
    MediaFile,
    PackageError,
    SelectionPolicy,
    normalize_pmcid,
)

FILE_LIST = "oa_file_list.csv"
FILE_LIST_COLUMNS = (
    "File",
    "Article Citation",
    "Accession ID",
    "Last Updated (YYYY-MM-DD HH:MM:SS)",
    "PMID",
    "License",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".tif", ".tiff", ".bmp")
MAX_PACKAGE_BYTES = 2 * 1024**3  # decompressed, summed over members
MAX_MEMBER_BYTES = 256 * 1024**2
PACKAGE_RE = re.compile(r"(PMC\d+)\.tar\.gz$", re.IGNORECASE)


def listing_units(root: str) -> list[ListingUnit]:
    filesystem, path = fs.filesystem(root)
    if filesystem.exists(fs.join(path, FILE_LIST)):
        return [ListingUnit("legacy_filelist", root, FILE_LIST)]
    return [ListingUnit("legacy_glob", root, "")]


def refs_in_unit(unit: ListingUnit) -> Iterator[ArticleRef]:
    if unit.kind == "legacy_filelist":
        yield from _refs_from_file_list(unit.root, unit.arg)
    elif unit.kind == "legacy_glob":
        yield from _refs_from_glob(unit.root)
    else:
        raise ValueError(f"not a legacy listing unit: {unit.kind}")


def _refs_from_file_list(root: str, name: str) -> Iterator[ArticleRef]:
    """Rows of the legacy file list: File, Article Citation, Accession ID, Last Updated, PMID, License."""
    text = fs.read_bytes(fs.join(root, name)).decode("utf-8-sig")
    for row in csv.DictReader(io.StringIO(text)):
        package = (row.get("File") or "").strip()
        accession = (row.get("Accession ID") or "").strip()
        if not package or not accession:
            continue
        yield ArticleRef(
            pmcid=normalize_pmcid(accession),
            version=None,
            layout="legacy",
            root=root,
            path=fs.join(root, package),
            license=normalize_license(row.get("License")),
            pmid=(row.get("PMID") or "").strip() or None,
        )


def _refs_from_glob(root: str) -> Iterator[ArticleRef]:
    filesystem, path = fs.filesystem(root)
    base = path.rstrip("/")
    for found in sorted(filesystem.glob(f"{base}/**/*.tar.gz")):
        m = PACKAGE_RE.search(found)
        if m:
            relative = found[len(base) + 1 :]
            yield ArticleRef(
                pmcid=m.group(1).upper(),
                version=None,
                layout="legacy",
                root=root,
                path=fs.join(root, relative),
            )


def _unsafe(name: str) -> bool:
    """Absolute, drive-qualified or climbing out with `..` (either slash)."""
    if not name:
        return True
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", name) is not None


def read_package(url: str) -> tuple[bytes, dict[str, MediaFile]]:
    """The article XML and the image members of a package, read in one streaming pass."""
    xml_members: dict[str, bytes] = {}
    media: dict[str, MediaFile] = {}
    total = 0
    try:
        with (
            fsspec.open(url, "rb", **fs.storage_options(url)) as raw,
            tarfile.open(fileobj=raw, mode="r|gz") as tar,
        ):
            for member in tar:
                if _unsafe(member.name) or (member.issym() or member.islnk()) and _unsafe(member.linkname):
                    raise PackageError(
                        "tar_path_unsafe", f"{url}: member {member.name!r} escapes the package"
                    )
                if not member.isfile():
                    continue
                total += member.size
                if total > MAX_PACKAGE_BYTES:
                    raise PackageError(
                        "package_too_large", f"{url} unpacks to more than {MAX_PACKAGE_BYTES} bytes"
                    )
                name = PurePosixPath(member.name).name
                lower = name.lower()
                if lower.endswith((".nxml", ".xml")):
                    xml_members[name] = _read_member(tar, member)
                elif lower.endswith(IMAGE_SUFFIXES):
                    if member.size > MAX_MEMBER_BYTES:
                        media[name] = MediaFile(oversize=True)
                    else:
                        media[name] = MediaFile(data=_read_member(tar, member))
    except FileNotFoundError as exc:
        raise PackageError("package_missing", f"{url}: {exc}") from exc
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise PackageError("package_corrupt", f"{url}: {exc}") from exc
    nxml = sorted(n for n in xml_members if n.lower().endswith(".nxml")) or sorted(xml_members)
    if not nxml:
        raise PackageError("xml_missing", f"{url} holds no .nxml article")
    if len(nxml) > 1:
        raise PackageError("xml_ambiguous", f"{url} holds several articles: {nxml}")
    return xml_members[nxml[0]], media


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:
        return b""
    return handle.read(MAX_MEMBER_BYTES + 1)


def open_article(ref: ArticleRef, policy: SelectionPolicy) -> ArticlePackage:
    # The licence is known from the file list before the package is read, so excluded ones cost nothing.
    if not license_admitted(ref.license, policy.license):
        raise PackageError(
            "license_excluded", f"licence {ref.license!r} is outside --license {policy.license}"
        )
    xml, media = read_package(ref.path)
    return ArticlePackage(ref=ref, xml=xml, license=ref.license, pmid=ref.pmid, media=media)
