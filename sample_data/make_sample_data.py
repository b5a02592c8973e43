"""Build the bundled sample data from real published material.

The five JATS articles in `jats/` come without images. This gives every graphic they reference a real
medical image (pydicom's CT and MR test files, a nibabel test volume, scikit-image's retina,
immunohistochemistry and cell images), and lays the articles out twice:

- `pmc-cloud/`: the PMC Cloud Service layout (version folders, JSON metadata with md5 URLs, a
  `metadata/` copy and a daily S3 inventory); PMC1790863 has two versions, so the newest is chosen;
- `pmc-legacy/`: legacy `oa_package/xx/yy/PMC<id>.tar.gz` packages and `oa_file_list.csv`.

- `classification/`: a small image-classification dataset (what each real image shows is its class:
  thoracic spine on chest CT, cerebral hemispheres on brain MRI, optic disc on a fundus photograph,
  colonic glands on immunohistochemistry) made from the same real files, as DICOM,
  NIfTI, PNG and JPEG, with a CSV manifest (patient ids for grouped splits) and a dataset card.
  The DICOM files carry obviously fake identifying attributes, so tests can prove none reach a corpus.

It is deterministic (fixed tar and gzip timestamps), so rerunning it changes nothing.
Run: `.venv/bin/python sample_data/make_sample_data.py`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import skimage.data
from nibabel.testing import data_path as nibabel_data
from PIL import Image
from pydicom.data import get_testdata_file

from connectors.pmc_legacy import FILE_LIST_COLUMNS

HERE = Path(__file__).resolve().parent
BUCKET = "s3://pmc-oa-opendata"
INVENTORY_DATE = "2026-11-26T01-00Z"


@dataclass(frozen=True)
class Article:
    file: str
    pmcid: str
    license: str
    citation: str
    title: str


ARTICLES = [
    Article(
        "pone.0000217.nxml", "PMC1790863", "CC BY", "PLoS One. 2007 Feb 14; 2(2):e217", "PLoS ONE 2(2): e217"
    ),
    Article(
        "1471-2180-11-174.nxml",
        "PMC3166277",
        "CC BY",
        "BMC Microbiol. 2011 Aug 2; 11:174",
        "BMC Microbiology 11:174",
    ),
    # US government work: public domain, which PMC lists without a CC code.
    Article(
        "ehp-116-1694.nxml",
        "PMC2599765",
        "NO-CC CODE",
        "Environ Health Perspect. 2008 Dec; 116(12):1694",
        "EHP 116:1694",
    ),
    # The eLife XML carries no PMCID; the sample metadata supplies it, as PMC's JSON does.
    Article("elife00013.xml", "PMC3463246", "CC BY", "eLife. 2012; 1:e00013", "eLife 1:e00013"),
    Article(
        "PMC12755737.xml",
        "PMC12755737",
        "CC BY",
        "PLoS One. 2025; 20(12):e0338891",
        "PLOS One 20(12): e0338891",
    ),
]


def _window(pixels: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(pixels, (1, 99))
    return (np.clip((pixels - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def source_images() -> list[Image.Image]:
    """One distinct real image per figure of the sample articles (no two figures share a picture, as in
    PMC, so that dedupe finds only real duplicates): CT and MR test files, MRI slices two apart, regions
    of the fundus, immunohistochemistry and microscopy images, and scikit-image's other pictures."""
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array.astype(np.float32)
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array.astype(np.float32)
    volume = np.asarray(nib.load(f"{nibabel_data}/anatomical.nii").dataobj, dtype=np.float32)
    middle = volume.shape[2] // 2
    images = [
        Image.fromarray(_window(ct)).resize((384, 384)),
        Image.fromarray(skimage.data.retina()).resize((448, 448)),
        Image.fromarray(_window(mr)).resize((384, 384)),
        Image.fromarray(skimage.data.immunohistochemistry()).resize((400, 400)),
        Image.fromarray(_window(np.rot90(volume[:, :, middle]))).resize((320, 384)),
        Image.fromarray(skimage.data.cell()).resize((440, 360)),
    ]
    for z in range(middle - 14, middle + 15, 2):
        if z != middle and 0 <= z < volume.shape[2]:
            images.append(Image.fromarray(_window(np.rot90(volume[:, :, z]))).resize((320, 384)))
    for source in (skimage.data.retina(), skimage.data.immunohistochemistry(), skimage.data.cell()):
        h, w = source.shape[:2]
        for top, left in ((0, 0), (0, w // 2), (h // 2, 0), (h // 2, w // 2)):
            images.append(Image.fromarray(source[top : top + h // 2, left : left + w // 2]).resize((360, 360)))
    for name in ("coins", "moon", "hubble_deep_field", "astronaut", "coffee", "chelsea", "camera", "page"):
        images.append(Image.fromarray(getattr(skimage.data, name)()))
    return [im.convert("RGB") if im.mode not in ("L", "RGB") else im for im in images]


def ct_16bit() -> Image.Image:
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array.astype(np.uint16)
    return Image.fromarray(ct).resize((256, 256))


def graphic_hrefs(xml: bytes) -> list[str]:
    """Every local graphic an article references (figures, tables, formulas), in document order."""
    hrefs = re.findall(rb"<(?:inline-)?graphic\b[^>]*?xlink:href=\"([^\"]+)\"", xml)
    seen: dict[str, None] = {}
    for raw in hrefs:
        href = raw.decode()
        if "://" not in href:
            seen.setdefault(href, None)
    return list(seen)


def render(image: Image.Image, suffix: str) -> bytes:
    buffer = io.BytesIO()
    if suffix == ".jpg":
        image.convert("RGB" if image.mode != "L" else "L").save(buffer, "JPEG", quality=85)
    elif suffix == ".png":
        image.save(buffer, "PNG")
    elif suffix == ".gif":
        image.convert("P", palette=Image.Palette.ADAPTIVE).save(buffer, "GIF")
    elif suffix == ".tif":
        image.save(buffer, "TIFF")
    else:
        raise ValueError(suffix)
    return buffer.getvalue()


def first_image(article: Article) -> int:
    """Where the article's figures start in the image pool: after the figures of the articles before it."""
    before = ARTICLES[: ARTICLES.index(article)]
    return sum(len(figure_hrefs((HERE / "jats" / a.file).read_bytes())) for a in before)


def graphic_kind(href: str) -> str:
    """ "formula" (an equation image), "thumbnail" (PMC's GIF next to a full image) or "figure"."""
    stem, dot, ext = href.rpartition(".")
    has_ext = dot and ext.lower() in ("jpg", "gif", "png", "tif")
    if re.search(r"\.e\d+$", stem if has_ext else href):
        return "formula"
    return "thumbnail" if has_ext and ext.lower() == "gif" else "figure"


def figure_hrefs(xml: bytes) -> list[str]:
    return [h for h in graphic_hrefs(xml) if graphic_kind(h) == "figure"]


def media_for(article: Article, layout: str, pool: list[Image.Image]) -> dict[str, bytes]:
    """File name -> bytes for every graphic of the article."""
    xml = (HERE / "jats" / article.file).read_bytes()
    files: dict[str, bytes] = {}
    start = first_image(article)
    figure_index = 0
    for href in graphic_hrefs(xml):
        stem, dot, ext = href.rpartition(".")
        has_ext = dot and ext.lower() in ("jpg", "gif", "png", "tif")
        kind = graphic_kind(href)
        is_formula = kind == "formula"
        if is_formula:
            image = Image.new("L", (96, 32), 255)
        elif kind == "thumbnail":  # PMC's thumbnails of the current layout
            image = pool[(start + figure_index) % len(pool)].resize((100, 100))
        else:
            image = pool[(start + figure_index) % len(pool)]
            figure_index += 1
        if has_ext:
            files[href] = render(image, "." + ext.lower())
            continue
        # Extensionless hrefs (legacy XML): vary the formats the packages hold, as real ones do.
        suffix = ".jpg"
        if layout == "legacy" and figure_index == 2 and not is_formula:
            suffix = ".gif"
        elif layout == "legacy" and figure_index == 3 and not is_formula:
            suffix, image = ".tif", ct_16bit()
        elif layout == "cloud" and figure_index == 2 and not is_formula:
            suffix = ".png"
        files[href + suffix] = render(image, suffix)
    return files


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def write_cloud(pool: list[Image.Image]) -> None:
    root = HERE / "pmc-cloud"
    shutil.rmtree(root, ignore_errors=True)
    (root / "metadata").mkdir(parents=True)
    keys = []
    for article in ARTICLES:
        versions = [1, 2] if article.pmcid == "PMC1790863" else [1]
        for version in versions:
            name = f"{article.pmcid}.{version}"
            folder = root / name
            folder.mkdir()
            xml = (HERE / "jats" / article.file).read_bytes()
            (folder / f"{name}.xml").write_bytes(xml)
            media = media_for(article, "cloud", pool)
            for file_name, data in media.items():
                (folder / file_name).write_bytes(data)
            meta = {
                "pmcid": article.pmcid,
                "version": version,
                "pmid": None,
                "doi": None,
                "title": article.title,
                "citation": article.citation,
                "is_pmc_openaccess": True,
                "is_manuscript": False,
                "is_historical_ocr": False,
                "is_retracted": False,
                "license_code": article.license,
                "xml_url": f"{BUCKET}/{name}/{name}.xml?md5={md5(xml)}",
                "pdf_url": None,
                "media_urls": [f"{BUCKET}/{name}/{n}?md5={md5(d)}" for n, d in sorted(media.items())],
                "text_url": None,
            }
            text = json.dumps(meta, indent=2) + "\n"
            (folder / f"{name}.json").write_text(text)
            (root / "metadata" / f"{name}.json").write_text(text)
            keys.append(f"metadata/{name}.json")
    write_inventory(root, keys)


def write_inventory(root: Path, keys: list[str]) -> None:
    rows = io.StringIO()
    writer = csv.writer(rows, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for key in sorted(keys):
        writer.writerow(["pmc-oa-opendata", key, "1024", "2026-11-25T12:00:00.000Z"])
    data = gzip.compress(rows.getvalue().encode(), mtime=0)
    data_key = "inventory-reports/pmc-oa-opendata/metadata/data/0d4b7f6e-sample.csv.gz"
    (root / data_key).parent.mkdir(parents=True)
    (root / data_key).write_bytes(data)
    manifest = {
        "sourceBucket": "pmc-oa-opendata",
        "destinationBucket": "arn:aws:s3:::pmc-oa-opendata",
        "version": "2016-11-30",
        "creationTimestamp": "1764118800000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate",
        "files": [{"key": data_key, "size": len(data), "MD5checksum": md5(data)}],
    }
    folder = root / "inventory-reports/pmc-oa-opendata/metadata" / INVENTORY_DATE
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def tar_gz(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_200_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def write_legacy(pool: list[Image.Image]) -> None:
    root = HERE / "pmc-legacy"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    rows = []
    for article in ARTICLES:
        digest = hashlib.sha1(article.pmcid.encode()).hexdigest()
        package = f"oa_package/{digest[:2]}/{digest[2:4]}/{article.pmcid}.tar.gz"
        members = {f"{article.pmcid}/{article.file}": (HERE / "jats" / article.file).read_bytes()}
        for name, data in media_for(article, "legacy", pool).items():
            members[f"{article.pmcid}/{name}"] = data
        (root / package).parent.mkdir(parents=True, exist_ok=True)
        (root / package).write_bytes(tar_gz(members))
        rows.append([package, article.citation, article.pmcid, "2026-01-15 10:00:00", "", article.license])
    with open(root / "oa_file_list.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(FILE_LIST_COLUMNS)
        writer.writerows(rows)


# Fake identifying values planted in the demo DICOM files; tests assert none reaches a corpus.
FAKE_PHI = {
    "PatientName": "DEMO^PATIENT^PHI",
    "PatientID": "PHI-ID-20261127",
    "PatientBirthDate": "19010101",
    "AccessionNumber": "ACC-PHI-99887766",
    "InstitutionName": "Demo Hospital PHI Institute",
    "ReferringPhysicianName": "DOCTOR^REFERRING^PHI",
}

CARD = """\
# Dataset card: the only facts captions may state about these images. Each class names what the
# real source image shows (pydicom's CT_small is an axial chest CT through a thoracic vertebra;
# nibabel's anatomical.nii a brain MRI; scikit-image's retina a fundus photograph centred near the
# optic disc; its immunohistochemistry image colonic glands stained for FHL2 with DAB).
name: medcorpus-demo
classes:
  thoracic spine:
    modality: CT
    anatomy: chest
    description: an axial CT slice of the chest through a thoracic vertebra
    synonyms: [thoracic vertebra, vertebra]
  cerebral hemispheres:
    modality: MRI
    anatomy: brain
    description: an axial magnetic resonance slice through the cerebral hemispheres
    synonyms: [cerebrum, brain parenchyma]
  optic disc:
    modality: fundus photograph
    anatomy: retina
    description: a colour fundus photograph showing the optic disc and retinal vessels
    synonyms: [optic nerve head, optic disk]
  colonic glands:
    modality: histopathology
    anatomy: colon
    description: colonic glands with immunohistochemical DAB staining and haematoxylin counterstain
    synonyms: [colonic crypts, colon glands]
"""


def _crops(image: Image.Image, n: int, fraction: float = 0.75) -> list[Image.Image]:
    """n deterministic crops: distinct views of one real image, standing in for more samples."""
    width, height = image.size
    cw, ch = int(width * fraction), int(height * fraction)
    corners = [
        (0, 0),
        (width - cw, 0),
        (0, height - ch),
        (width - cw, height - ch),
        ((width - cw) // 2, (height - ch) // 2),
    ]
    return [image.crop((x, y, x + cw, y + ch)) for x, y in corners[:n]]


def write_classification() -> None:
    root = HERE / "classification"
    shutil.rmtree(root, ignore_errors=True)
    rows = []

    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    (root / "chest_ct").mkdir(parents=True)
    for i, (x, y) in enumerate([(0, 0), (32, 0), (0, 32), (32, 32)]):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        crop = ct.pixel_array[y : y + 96, x : x + 96].copy()
        ds.PixelData, ds.Rows, ds.Columns = crop.tobytes(), 96, 96
        for keyword, value in FAKE_PHI.items():
            setattr(ds, keyword, value)
        ds.BodyPartExamined = "CHEST"
        name = f"chest_ct/ct_{i}.dcm"
        ds.save_as(root / name, enforce_file_format=True)
        rows.append((name, "thoracic spine", f"ct-patient-{i // 2}"))

    (root / "brain_mri").mkdir()
    anatomical = nib.load(f"{nibabel_data}/anatomical.nii")
    volume = np.asarray(anatomical.dataobj)
    for i, part in enumerate([volume, volume[:, ::-1, :]]):
        name = f"brain_mri/mri_{i}.nii.gz"
        image = nib.Nifti1Image(np.ascontiguousarray(part), anatomical.affine)
        raw = io.BytesIO()
        file_map = image.make_file_map({"image": raw, "header": raw})
        image.to_file_map(file_map)
        (root / name).write_bytes(gzip.compress(raw.getvalue(), mtime=0))
        rows.append((name, "cerebral hemispheres", f"mri-patient-{i}"))

    for folder, source, suffix, label, prefix in [
        ("fundus", skimage.data.retina(), ".png", "optic disc", "fundus"),
        ("ihc", skimage.data.immunohistochemistry(), ".jpg", "colonic glands", "ihc"),
    ]:
        (root / folder).mkdir()
        for i, crop in enumerate(_crops(Image.fromarray(source).resize((512, 512)), 4)):
            name = f"{folder}/{prefix}_{i}{suffix}"
            (root / name).write_bytes(render(crop, suffix))
            rows.append((name, label, f"{prefix}-patient-{i // 2}"))

    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["path", "label", "patient_id"])
        writer.writerows(rows)
    (root / "card.yaml").write_text(CARD)


def main() -> None:
    pool = source_images()
    write_cloud(pool)
    write_legacy(pool)
    write_classification()
    print(f"wrote {HERE / 'pmc-cloud'}, {HERE / 'pmc-legacy'} and {HERE / 'classification'}")


if __name__ == "__main__":
    main()
