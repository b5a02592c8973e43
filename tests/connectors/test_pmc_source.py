"""Listing and opening PMC articles in both layouts, on the bundled sample data (real JATS articles)."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from connectors import fs
from connectors.pmc_cloud import locate
from connectors.pmc_source import (
    PackageError,
    SelectionPolicy,
    detect_layout,
    listing_units,
    open_article,
    read_pmcid_file,
    refs_in_unit,
)

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
CLOUD = str(SAMPLE / "pmc-cloud")
LEGACY = str(SAMPLE / "pmc-legacy")
ALL_PMCIDS = {"PMC1790863", "PMC3166277", "PMC2599765", "PMC3463246", "PMC12755737"}


def listed(root: str, **kwargs) -> list:
    return [ref for unit in listing_units(root, **kwargs) for ref in refs_in_unit(unit)]


def test_layouts_are_detected():
    assert detect_layout(CLOUD) == "cloud"
    assert detect_layout(LEGACY) == "legacy"


def test_unrecognised_source_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(PackageError) as err:
        detect_layout(str(tmp_path))
    assert err.value.reason == "source_unrecognised"


def test_cloud_listing_from_the_inventory_finds_every_version():
    units = listing_units(CLOUD)
    assert [u.kind for u in units] == ["inventory_csv"]
    refs = listed(CLOUD)
    assert {r.pmcid for r in refs} == ALL_PMCIDS
    assert sorted(r.version for r in refs if r.pmcid == "PMC1790863") == [1, 2]
    assert all(r.path.endswith(f"metadata/{r.pmcid}.{r.version}.json") for r in refs)


def test_cloud_prefix_listing_matches_the_inventory():
    by_inventory = {(r.pmcid, r.version, r.path) for r in listed(CLOUD)}
    units = listing_units(CLOUD, listing="prefix")
    assert [u.kind for u in units] == ["cloud_prefix"]
    assert {(r.pmcid, r.version, r.path) for r in listed(CLOUD, listing="prefix")} == by_inventory


def test_cloud_folders_alone_are_listed(tmp_path):
    """A synced subset with only version folders (no metadata/ copy, no inventory)."""
    shutil.copytree(Path(CLOUD) / "PMC3166277.1", tmp_path / "PMC3166277.1")
    refs = listed(str(tmp_path))
    assert [(r.pmcid, r.version) for r in refs] == [("PMC3166277", 1)]
    assert refs[0].path.endswith("PMC3166277.1/PMC3166277.1.json")
    package = open_article(refs[0], SelectionPolicy())
    assert b"<article" in package.xml


def test_cloud_listing_by_pmcid_looks_up_versions():
    refs = listed(CLOUD, pmcids=["PMC1790863"])
    assert sorted((r.pmcid, r.version) for r in refs) == [("PMC1790863", 1), ("PMC1790863", 2)]


def test_pmcid_file(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("pmcid\nPMC3166277\n# a comment\n2599765  # bare number\n\nPMC3166277\n")
    assert read_pmcid_file(str(path)) == ["PMC2599765", "PMC3166277"]
    path.write_text("PMC12x\n")
    with pytest.raises(ValueError, match="not a PMCID"):
        read_pmcid_file(str(path))


def test_cloud_article_opens_with_verified_xml_and_media():
    ref = next(r for r in listed(CLOUD) if r.pmcid == "PMC12755737")
    package = open_article(ref, SelectionPolicy())
    assert package.license == "CC BY"
    assert b"PMC12755737" in package.xml
    assert "pone.0338891.g001.jpg" in package.media_names
    assert "pone.0338891.g001.gif" in package.media_names
    data = package.read_media("pone.0338891.g001.jpg", max_bytes=10**8)
    assert data[:2] == b"\xff\xd8"


def _copy_cloud(tmp_path: Path, pmcid_version: str) -> tuple[Path, dict]:
    root = tmp_path / "cloud"
    (root / "metadata").mkdir(parents=True)
    shutil.copytree(Path(CLOUD) / pmcid_version, root / pmcid_version)
    meta = json.loads((Path(CLOUD) / "metadata" / f"{pmcid_version}.json").read_text())
    return root, meta


def _write_meta(root: Path, pmcid_version: str, meta: dict) -> None:
    (root / "metadata" / f"{pmcid_version}.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("change", "policy", "reason"),
    [
        ({"is_retracted": True}, SelectionPolicy(), "retracted"),
        ({"is_pmc_openaccess": False}, SelectionPolicy(), "not_open_access"),
        ({"license_code": "CC BY-NC"}, SelectionPolicy(license="commercial"), "license_excluded"),
        ({"license_code": "NO-CC CODE"}, SelectionPolicy(license="noncommercial"), "license_excluded"),
        ({"pmcid": "PMC999"}, SelectionPolicy(), "metadata_invalid"),
    ],
)
def test_cloud_policy_rejects(tmp_path, change, policy, reason):
    root, meta = _copy_cloud(tmp_path, "PMC3166277.1")
    _write_meta(root, "PMC3166277.1", {**meta, **change})
    (ref,) = listed(str(root))
    with pytest.raises(PackageError) as err:
        open_article(ref, policy)
    assert err.value.reason == reason


def test_cloud_policy_admits_what_it_should(tmp_path):
    root, meta = _copy_cloud(tmp_path, "PMC3166277.1")
    _write_meta(root, "PMC3166277.1", {**meta, "license_code": "cc by-nc-sa 4.0", "is_retracted": True})
    (ref,) = listed(str(root))
    package = open_article(ref, SelectionPolicy(license="noncommercial", include_retracted=True))
    assert package.license == "CC BY-NC-SA"


def test_cloud_xml_md5_mismatch_is_rejected(tmp_path):
    root, meta = _copy_cloud(tmp_path, "PMC3166277.1")
    _write_meta(root, "PMC3166277.1", meta)
    xml = root / "PMC3166277.1" / "PMC3166277.1.xml"
    xml.write_bytes(xml.read_bytes().replace(b"Background", b"Backgr0und", 1))
    (ref,) = listed(str(root))
    with pytest.raises(PackageError) as err:
        open_article(ref, SelectionPolicy())
    assert err.value.reason == "md5_mismatch"


def test_cloud_media_md5_mismatch_and_missing_media(tmp_path):
    root, meta = _copy_cloud(tmp_path, "PMC3166277.1")
    _write_meta(root, "PMC3166277.1", meta)
    image = root / "PMC3166277.1" / "1471-2180-11-174-1.jpg"
    image.write_bytes(image.read_bytes() + b"tampered")
    (root / "PMC3166277.1" / "1471-2180-11-174-2.png").unlink()
    (ref,) = listed(str(root))
    package = open_article(ref, SelectionPolicy())
    with pytest.raises(fs.FetchError) as err:
        package.read_media("1471-2180-11-174-1.jpg", max_bytes=10**8)
    assert err.value.reason == "md5_mismatch"
    with pytest.raises(fs.FetchError) as err:
        package.read_media("1471-2180-11-174-2.png", max_bytes=10**8)
    assert err.value.reason == "file_missing"
    with pytest.raises(fs.FetchError) as err:
        package.read_media("1471-2180-11-174-3.jpg", max_bytes=100)
    assert err.value.reason == "file_too_large"


def test_locate_maps_bucket_urls_onto_the_root():
    assert locate("/data/pmc", "s3://pmc-oa-opendata/PMC1.1/a%20b.jpg") == "/data/pmc/PMC1.1/a b.jpg"
    assert locate("https://pmc-oa-opendata.s3.amazonaws.com", "s3://pmc-oa-opendata/PMC1.1/x.jpg") == (
        "https://pmc-oa-opendata.s3.amazonaws.com/PMC1.1/x.jpg"
    )


def test_legacy_listing_from_the_file_list_carries_licences():
    refs = listed(LEGACY)
    assert {r.pmcid for r in refs} == ALL_PMCIDS
    licences = {r.pmcid: r.license for r in refs}
    assert licences["PMC2599765"] == "NO-CC CODE"
    assert licences["PMC1790863"] == "CC BY"
    assert all(r.path.endswith(f"{r.pmcid}.tar.gz") and r.version is None for r in refs)


def test_legacy_packages_without_a_file_list_are_found_by_glob(tmp_path):
    shutil.copytree(Path(LEGACY) / "oa_package", tmp_path / "oa_package")
    refs = listed(str(tmp_path))
    assert {r.pmcid for r in refs} == ALL_PMCIDS
    assert all(r.license is None for r in refs)
    # No licence known: only --license all admits them.
    with pytest.raises(PackageError) as err:
        open_article(refs[0], SelectionPolicy(license="commercial"))
    assert err.value.reason == "license_excluded"


def test_legacy_package_streams_xml_and_images():
    ref = next(r for r in listed(LEGACY) if r.pmcid == "PMC1790863")
    package = open_article(ref, SelectionPolicy(license="commercial"))
    assert b"pone.0000217" in package.xml
    assert "pone.0000217.g001.jpg" in package.media_names
    assert package.read_media("pone.0000217.g001.jpg", max_bytes=10**8)[:2] == b"\xff\xd8"


def _package(tmp_path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], name="PMC1.tar.gz") -> str:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw.getvalue()))
    return str(path)


def _open_legacy(path: str):
    from connectors.pmc_legacy import read_package

    return read_package(path)


XML = b"<article><front/></article>"


@pytest.mark.parametrize(
    "name", ["../../etc/cron.d/evil.jpg", "/etc/passwd.jpg", "PMC1/../../x.nxml", "C:/x.jpg"]
)
def test_tar_path_tricks_reject_the_package(tmp_path, name):
    path = _package(tmp_path, [("PMC1/a.nxml", XML), (name, b"x")])
    with pytest.raises(PackageError) as err:
        _open_legacy(path)
    assert err.value.reason == "tar_path_unsafe"


def test_tar_symlink_out_of_the_package_is_rejected(tmp_path):
    link = tarfile.TarInfo("PMC1/f1.jpg")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    path = _package(tmp_path, [("PMC1/a.nxml", XML), link])
    with pytest.raises(PackageError) as err:
        _open_legacy(path)
    assert err.value.reason == "tar_path_unsafe"


def test_tar_without_article_xml_and_corrupt_packages(tmp_path):
    with pytest.raises(PackageError) as err:
        _open_legacy(_package(tmp_path, [("PMC1/f1.jpg", b"x")]))
    assert err.value.reason == "xml_missing"
    corrupt = tmp_path / "PMC2.tar.gz"
    corrupt.write_bytes(gzip.compress(b"not a tar file at all" * 40)[:-20])
    with pytest.raises(PackageError) as err:
        _open_legacy(str(corrupt))
    assert err.value.reason == "package_corrupt"


def test_tar_members_are_never_written_to_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _package(tmp_path, [("PMC1/a.nxml", XML), ("PMC1/f1.jpg", b"\xff\xd8jpeg")])
    before = sorted(p.name for p in tmp_path.rglob("*"))
    xml, media = _open_legacy(path)
    assert xml == XML and media["f1.jpg"].data == b"\xff\xd8jpeg"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_md5_helpers():
    url = "s3://b/PMC1.1/x.jpg?md5=ABCDEF"
    assert fs.split_md5(url) == ("s3://b/PMC1.1/x.jpg", "abcdef")
    assert fs.split_md5("/a/b.jpg") == ("/a/b.jpg", None)
