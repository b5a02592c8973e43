"""`medcorpus ingest pmc` end to end on Beam's DirectRunner, on the bundled sample data."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import datasets
import pytest
import skimage.data
from PIL import Image

from connectors.corpus import corpus_rows
from connectors.images import normalize_image_bytes
from pipelines.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
CLOUD = SAMPLE / "pmc-cloud"
LEGACY = SAMPLE / "pmc-legacy"


def ingest(source: Path | str, out: Path, *extra: str) -> dict:
    code = main(["ingest", "pmc", "--source", str(source), "--out", str(out), *extra])
    manifest = json.loads((out / "manifest.json").read_text())
    assert code == (0 if manifest["reconciled"] else 3)
    return manifest


def rows(corpus: Path, folder: str = "data") -> list[dict]:
    return list(corpus_rows(str(corpus), folder))


@pytest.fixture(scope="module")
def cloud_corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cloud") / "corpus"
    return out, ingest(CLOUD, out)


def test_cloud_sample_becomes_a_reconciled_corpus(cloud_corpus):
    out, manifest = cloud_corpus
    assert manifest["reconciled"], manifest["problems"]
    stages = manifest["stages"]
    assert stages["listing"]["in"] == 6  # five articles, one of them in two versions
    assert stages["listing"]["removed"] == {"superseded_version": 1}
    assert stages["articles"] == {"in": 5, "out": 5, "rejected": {}, "removed": {}}
    pairs = rows(out)
    assert len(pairs) == manifest["outputs"]["pairs"] == stages["figures"]["out"]
    assert len({p["id"] for p in pairs}) == len(pairs)
    assert {p["pmcid"] for p in pairs} == {
        "PMC1790863",
        "PMC3166277",
        "PMC2599765",
        "PMC3463246",
        "PMC12755737",
    }
    # The newest version of PMC1790863 was read.
    assert {p["source_uri"] for p in pairs if p["pmcid"] == "PMC1790863"} == {
        str(CLOUD / "metadata" / "PMC1790863.2.json")
    }


def test_records_carry_article_metadata_and_licence(cloud_corpus):
    out, _ = cloud_corpus
    by_id = {p["id"]: p for p in rows(out)}
    first = next(p for i, p in by_id.items() if i.startswith("pmc/PMC12755737/"))
    assert first["doi"] == "10.1371/journal.pone.0338891"
    assert first["license"] == "CC BY" and first["license_group"] == "commercial"
    assert first["year"] == 2025
    ehp = [p for p in by_id.values() if p["pmcid"] == "PMC2599765"]
    assert ehp and all(p["license_group"] == "other" for p in ehp)
    # The eLife XML has no PMCID: the metadata's is used.
    assert any(i.startswith("pmc/PMC3463246/") for i in by_id)
    for pair in by_id.values():
        assert pair["text_model"] == "jats" and pair["source"] == "pmc"
        assert pair["caption"] and pair["image"]["bytes"]
        assert max(pair["width"], pair["height"]) <= 1024


def test_splits_never_divide_an_article(cloud_corpus):
    out, _ = cloud_corpus
    split_of: dict[str, set] = {}
    for pair in rows(out):
        split_of.setdefault(pair["pmcid"], set()).add(pair["split"])
    assert all(len(s) == 1 for s in split_of.values())


def test_load_dataset_opens_the_corpus_offline(cloud_corpus):
    out, manifest = cloud_corpus
    loaded = datasets.load_dataset(str(out))
    assert set(loaded) == set(manifest["outputs"]["by_split"])
    split = next(iter(loaded.values()))
    assert isinstance(split[0]["image"], Image.Image)
    for column in ("id", "caption", "figure_label", "mentions", "kind", "license_group", "split", "pmcid"):
        assert column in split.column_names
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "NLM" in card


def test_same_named_corpus_folders_do_not_share_the_datasets_cache(tmp_path):
    """`datasets` keys its cache on the folder name and the card's YAML; the card's sizes keep two corpora
    apart."""
    small, large = tmp_path / "a" / "corpus", tmp_path / "b" / "corpus"
    ingest(LEGACY, small, "--limit", "1")
    ingest(LEGACY, large, "--limit", "2")
    assert len(datasets.load_dataset(str(small), split="train")) == len(rows(small))
    assert len(datasets.load_dataset(str(large), split="train")) == len(rows(large)) > len(rows(small))


def test_rerun_writes_identical_shards(cloud_corpus, tmp_path):
    out, _ = cloud_corpus
    again = tmp_path / "again"
    ingest(CLOUD, again)
    first = sorted(p.relative_to(out) for p in out.glob("*/*.parquet"))
    second = sorted(p.relative_to(again) for p in again.glob("*/*.parquet"))
    assert first == second
    for relative in first:
        assert (out / relative).read_bytes() == (again / relative).read_bytes()


def test_legacy_packages_give_the_same_records(cloud_corpus, tmp_path):
    out, _ = cloud_corpus
    legacy = tmp_path / "legacy"
    manifest = ingest(LEGACY, legacy)
    assert manifest["reconciled"], manifest["problems"]
    assert {p["id"] for p in rows(legacy)} == {p["id"] for p in rows(out)}
    assert {p["caption"] for p in rows(legacy)} == {p["caption"] for p in rows(out)}


def test_license_and_pmcid_selection(tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("PMC2599765\nPMC3166277\nPMC9999999\n")
    out = tmp_path / "out"
    manifest = ingest(CLOUD, out, "--license", "commercial", "--pmcids", str(ids))
    assert manifest["reconciled"], manifest["problems"]
    rejects = {(r["id"], r["reason"]) for r in rows(out, "rejects")}
    assert ("pmc/PMC9999999", "pmcid_not_found") in rejects
    assert ("pmc/PMC2599765", "license_excluded") in rejects
    assert {p["pmcid"] for p in rows(out)} == {"PMC3166277"}


def test_limit_takes_the_first_articles(tmp_path):
    out = tmp_path / "out"
    manifest = ingest(LEGACY, out, "--limit", "2")
    assert manifest["stages"]["articles"]["in"] == 2
    assert manifest["stages"]["listing"]["removed"] == {"over_limit": 3}
    assert {p["pmcid"] for p in rows(out)} == {
        "PMC1790863",
        "PMC2599765",
    }  # numeric order, not "PMC12..." first


def test_existing_corpus_is_not_overwritten_by_accident(cloud_corpus, capsys):
    out, _ = cloud_corpus
    assert main(["ingest", "pmc", "--source", str(CLOUD), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "[corpus_exists]" in err and "--overwrite" in err


# --- bad input: every one a reject with its reason, and the run goes on ---------------------------------

GOOD_XML = b"""<?xml version="1.0"?>
<article xmlns:xlink="http://www.w3.org/1999/xlink"><front><article-meta>
<article-id pub-id-type="pmc">{n}</article-id></article-meta></front><body><sec><p>See <xref ref-type="fig" rid="F1">Figure 1</xref>.</p>
{figs}</sec></body></article>"""


def _fig(fid: str, href: str) -> str:
    return (
        f'<fig id="{fid}"><label>Figure {fid}</label><caption><p>Caption of {fid} with words.</p></caption>'
        f'<graphic xlink:href="{href}"/></fig>'
    )


def _jpeg(size=(64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


def _bomb_png() -> bytes:
    """A tiny file whose header claims 100000 x 100000 pixels."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = (100000).to_bytes(4, "big") + (100000).to_bytes(4, "big")
    import zlib

    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def _write_package(root: Path, pmcid: str, members: dict[str, bytes]) -> str:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    relative = f"oa_package/00/00/{pmcid}.tar.gz"
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_bytes(gzip.compress(raw.getvalue()))
    return relative


def test_bad_input_becomes_rejects_and_the_manifest_reconciles(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    figs = "".join(
        [
            _fig("F1", "good"),
            _fig("F2", "missing"),
            _fig("F3", "corrupt"),
            _fig("F4", "bomb"),
            '<fig id="F5"><label>Figure 5</label><graphic xlink:href="good"/></fig>',
            '<fig id="F6"><label>Video 1</label><caption><p>A video.</p></caption><media xlink:href="v.mp4"/></fig>',
        ]
    )
    packages = {
        "PMC101": {
            "PMC101/a.nxml": GOOD_XML.replace(b"{n}", b"101").replace(b"{figs}", figs.encode()),
            "PMC101/good.jpg": _jpeg(),
            "PMC101/corrupt.jpg": _jpeg()[:40],
            "PMC101/bomb.png": _bomb_png(),
        },
        "PMC102": {"PMC102/a.nxml": b"<article><body><p>unclosed</body></article>"},
        "PMC103": {
            "PMC103/a.nxml": b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><article>&x;</article>'
        },
        "PMC104": {
            "PMC104/a.nxml": GOOD_XML.replace(b"{n}", b"104").replace(b"{figs}", b""),
            "../../evil.jpg": b"x",
        },
    }
    rows_csv = ["File,Article Citation,Accession ID,Last Updated (YYYY-MM-DD HH:MM:SS),PMID,License"]
    for pmcid, members in packages.items():
        rows_csv.append(f"{_write_package(root, pmcid, members)},cite,{pmcid},2026-01-01 00:00:00,,CC BY")
    rows_csv.append("oa_package/00/00/PMC105.tar.gz,cite,PMC105,2026-01-01 00:00:00,,CC BY")  # listed, absent
    (root / "oa_file_list.csv").write_text("\n".join(rows_csv) + "\n")

    out = tmp_path / "out"
    manifest = ingest(root, out)
    assert manifest["reconciled"], manifest["problems"]
    rejects = {r["id"]: r["reason"] for r in rows(out, "rejects")}
    assert rejects == {
        "pmc/PMC101/F2": "image_missing",
        "pmc/PMC101/F3": "image_decode",
        "pmc/PMC101/F4": "image_too_large",
        "pmc/PMC101/F5": "caption_empty",
        "pmc/PMC101/F6": "no_graphic",
        "pmc/PMC102": "xml_malformed",
        "pmc/PMC103": "xml_forbidden",
        "pmc/PMC104": "tar_path_unsafe",
        "pmc/PMC105": "package_missing",
    }
    assert [p["id"] for p in rows(out)] == ["pmc/PMC101/F1"]
    assert manifest["stages"]["articles"]["in"] == 5
    assert manifest["stages"]["figures"]["in"] == 6
    assert manifest["rejects"]["total"] == 9
    assert not (tmp_path / "evil.jpg").exists() and not Path("/evil.jpg").exists()


def test_md5_mismatch_in_the_cloud_layout_is_a_reject(tmp_path):
    root = tmp_path / "cloud"
    shutil.copytree(CLOUD / "PMC3166277.1", root / "PMC3166277.1")
    (root / "metadata").mkdir()
    shutil.copy(CLOUD / "metadata" / "PMC3166277.1.json", root / "metadata")
    image = root / "PMC3166277.1" / "1471-2180-11-174-3.jpg"
    image.write_bytes(image.read_bytes()[:-10] + b"0123456789")
    out = tmp_path / "out"
    manifest = ingest(root, out)
    assert manifest["reconciled"]
    assert {r["id"]: r["reason"] for r in rows(out, "rejects")} == {"pmc/PMC3166277/F3": "md5_mismatch"}
    assert len(rows(out)) == 3


def test_fsspec_urls_work_for_source_and_output():
    """The same run with the source and the corpus on another fsspec filesystem (memory://): nothing assumes
    local paths, as s3://, gs:// and https:// sources need."""
    import fsspec

    memory = fsspec.filesystem("memory")
    for path in sorted(CLOUD.rglob("*")):
        if path.is_file() and "PMC3166277" in path.name or path.parent.name == "PMC3166277.1":
            memory.pipe(f"/pmc/{path.relative_to(CLOUD)}", path.read_bytes())
    try:
        code = main(["ingest", "pmc", "--source", "memory://pmc", "--out", "memory://corpus"])
        manifest = json.loads(memory.cat("/corpus/manifest.json"))
        assert code == 0 and manifest["reconciled"], manifest["problems"]
        assert manifest["stages"]["articles"]["out"] == 1 and manifest["outputs"]["pairs"] == 4
        assert memory.exists("/corpus/data/train-00000-of-00001.parquet") and memory.exists(
            "/corpus/README.md"
        )
    finally:
        memory.rm("/pmc", recursive=True)
        if memory.exists("/corpus"):
            memory.rm("/corpus", recursive=True)


def test_records_say_whether_the_image_was_stored_as_it_came_or_re_encoded(tmp_path):
    """A fitting JPEG is stored byte for byte; a rotated, CMYK or oversize one is re-encoded (a JPEG at least
    twice --max-side from a reduced DCT decode); a cut one is still rejected. Every hash is of the decoded
    pixels, so the stored-as-is figure hashes the same as its re-encoded copy would."""
    retina = Image.fromarray(skimage.data.retina())
    fitting = _encode(retina.resize((800, 600)), "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 degrees counter-clockwise to display"
    images = {
        "fit": fitting,
        "rotated": _encode(retina.resize((600, 400)), "JPEG", exif=exif),
        "cmyk": _encode(retina.resize((500, 500)).convert("CMYK"), "JPEG"),
        "big": _encode(retina.resize((2400, 1800)), "JPEG"),
        "cut": fitting[: len(fitting) // 2],
    }
    root = tmp_path / "src"
    root.mkdir()
    figs = "".join(_fig(name, name) for name in images)
    members = {"PMC201/a.nxml": GOOD_XML.replace(b"{n}", b"201").replace(b"{figs}", figs.encode())}
    members |= {f"PMC201/{name}.jpg": data for name, data in images.items()}
    package = _write_package(root, "PMC201", members)
    header = "File,Article Citation,Accession ID,Last Updated (YYYY-MM-DD HH:MM:SS),PMID,License"
    (root / "oa_file_list.csv").write_text(f"{header}\n{package},cite,PMC201,2026-01-01 00:00:00,,CC BY\n")

    out = tmp_path / "out"
    manifest = ingest(root, out)
    assert manifest["reconciled"], manifest["problems"]
    by_name = {p["id"].rsplit("/", 1)[-1]: p for p in rows(out)}
    assert {n: p["image_stored"] for n, p in by_name.items()} == {
        "fit": "source",
        "rotated": "reencoded",
        "cmyk": "reencoded",
        "big": "reencoded_dct",
    }
    assert by_name["fit"]["image"]["bytes"] == fitting and by_name["fit"]["image"]["path"].endswith(".jpg")
    assert by_name["fit"]["image_sha256"] == normalize_image_bytes(fitting).sha256  # as if re-encoded
    assert (by_name["rotated"]["width"], by_name["rotated"]["height"]) == (400, 600)
    assert (by_name["big"]["width"], by_name["big"]["height"]) == (1024, 768)
    assert {r["id"]: r["reason"] for r in rows(out, "rejects")} == {"pmc/PMC201/cut": "image_decode"}


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **kwargs)
    return buffer.getvalue()
