"""`croissant.json` beside the dataset card: the corpus described in Croissant 1.1 JSON-LD (MLCommons),
so that tools which read Croissant (mlcroissant, TFDS, search engines) find the Parquet shards, the
typed record fields, the licences, the splits and whom to credit.

The shards are one `FileSet` per folder (`data/*.parquet`, `rejects/*.parquet`), which scales to any
number of shards. Where hashing is cheap (a local corpus of at most `HASH_LIMIT_BYTES`), every data
shard is also listed as a `FileObject` with its SHA-256. The fields follow `schemas.records` column by
column: structs become `subField`s, lists `isArray`, the HF image struct an `sc:ImageObject` read from
its `bytes`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from typing import Any

import pyarrow as pa

from connectors import fs
from connectors.corpus import DATA_DIR, REJECTS_DIR, list_shards, read_columns, shard_columns
from schemas.records import IMAGE_TYPE, PAIR_FIELDS, REJECT_FIELDS

CROISSANT = "croissant.json"
HASH_LIMIT_BYTES = 2 * 1024**3
PARQUET = "application/x-parquet"

CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "sc": "https://schema.org/",
    "samplingRate": "cr:samplingRate",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

_TYPES = {
    pa.string(): "sc:Text",
    pa.binary(): "sc:Text",
    pa.bool_(): "sc:Boolean",
    pa.int16(): "sc:Integer",
    pa.int32(): "sc:Integer",
    pa.int64(): "sc:Integer",
    pa.float32(): "sc:Float",
    pa.float64(): "sc:Float",
}

LICENSE_URLS = {
    "CC0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC BY": "https://creativecommons.org/licenses/by/4.0/",
    "CC BY-SA": "https://creativecommons.org/licenses/by-sa/4.0/",
    "CC BY-ND": "https://creativecommons.org/licenses/by-nd/4.0/",
    "CC BY-NC": "https://creativecommons.org/licenses/by-nc/4.0/",
    "CC BY-NC-SA": "https://creativecommons.org/licenses/by-nc-sa/4.0/",
    "CC BY-NC-ND": "https://creativecommons.org/licenses/by-nc-nd/4.0/",
}

PMC = {
    "@type": "sc:Dataset",
    "name": "PMC Open Access Subset",
    "url": "https://pmc.ncbi.nlm.nih.gov/tools/openftlist/",
    "publisher": {
        "@type": "sc:Organization",
        "name": "National Library of Medicine (NLM), National Center for Biotechnology Information",
    },
}
PMC_CITATION = (
    "@misc{pmc_oa_subset,\n  title = {PMC Open Access Subset},\n"
    "  author = {{National Library of Medicine}},\n  publisher = {National Center for Biotechnology Information},\n"
    "  address = {Bethesda (MD)},\n  howpublished = {\\url{https://pmc.ncbi.nlm.nih.gov/tools/openftlist/}}\n}"
)
PMC_CREDIT = (
    "Figures and captions come from articles in the PubMed Central (PMC) Open Access Subset, made available by "
    "the U.S. National Library of Medicine (NLM). Each pair is credited to its article: the authors, title, "
    "journal, year, DOI and PMCID are in the `title`, `journal`, `year`, `doi` and `pmcid` columns, and the "
    "article's licence is in `license`. Images were resized and re-encoded."
)


def _escape(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9\-_.]", "_", name)


def field_for(
    column: pa.Field, field_id: str, file_set: str, json_path: list[str] | None = None
) -> dict[str, Any]:
    """The Croissant field of one Parquet column (or of a struct member, via `json_path`)."""
    source: dict[str, Any] = {
        "fileSet": {"@id": file_set},
        "extract": {"column": json_path[0] if json_path else column.name},
    }
    path = json_path[1:] if json_path else []
    if path:
        source["transform"] = [{"jsonPath": p} for p in path] if len(path) > 1 else {"jsonPath": path[0]}
    kind = column.type
    if kind == IMAGE_TYPE:
        transforms = [*([source["transform"]] if "transform" in source else []), {"jsonPath": "bytes"}]
        source["transform"] = transforms if len(transforms) > 1 else transforms[0]
        return {"@type": "cr:Field", "@id": field_id, "dataType": "sc:ImageObject", "source": source}
    if pa.types.is_list(kind):
        inner = field_for(pa.field(column.name, kind.value_type), field_id, file_set, json_path)
        return {**inner, "isArray": True, "arrayShape": "-1"}
    if pa.types.is_struct(kind):
        base = json_path or [column.name]
        return {
            "@type": "cr:Field",
            "@id": field_id,
            "subField": [
                field_for(
                    kind.field(i),
                    f"{field_id}/{_escape(kind.field(i).name)}",
                    file_set,
                    [*base, kind.field(i).name],
                )
                for i in range(kind.num_fields)
            ],
        }
    return {"@type": "cr:Field", "@id": field_id, "dataType": _TYPES.get(kind, "sc:Text"), "source": source}


def _descriptions() -> dict[str, str]:
    """A line per column, from the comments of the record schema where it has one."""
    return {
        "id": "deterministic pair id (pmc/<PMCID>/<figure>, cls/<dataset>/<hash>)",
        "image": "the image (JPEG or PNG bytes; HF Image layout)",
        "image_sha256": "SHA-256 of the stored pixels (decoded, normalised and resized), with their shape and mode",
        "caption": "the caption",
        "captions": "alternative captions (classification pairs: K per label set)",
        "concepts": "UMLS concepts found in the caption (CUI, name, semantic types, span, score)",
        "license": "the licence of the article (PMC) or dataset",
        "license_group": "commercial | noncommercial | other",
        "split": "train | validation | test, assigned by article or patient",
        "modality": "image modality label",
        "source": "pmc | classification",
    }


def build_croissant(corpus: str, manifest: dict[str, Any], name: str, title: str) -> dict[str, Any]:
    """The Croissant JSON-LD of a finished corpus folder (its shards written, `manifest` its manifest)."""
    data_shards = list_shards(corpus, DATA_DIR)
    columns = set(shard_columns(data_shards[0])) if data_shards else {f.name for f in PAIR_FIELDS}
    fields = [f for f in PAIR_FIELDS if f.name in columns]
    licences, sources = _licences_and_sources(data_shards)
    splits = list(manifest["outputs"]["by_split"])

    distribution: list[dict[str, Any]] = []
    sizes = sum(manifest["outputs"].get("bytes_by_split", {}).values())
    if "://" not in corpus.removeprefix("file://") and sizes <= HASH_LIMIT_BYTES:
        for url in data_shards:
            relative = f"{DATA_DIR}/{url.rsplit('/', 1)[-1]}"
            distribution.append(
                {
                    "@type": "cr:FileObject",
                    "@id": _escape(relative),
                    "name": relative,
                    "contentUrl": relative,
                    "encodingFormat": PARQUET,
                    "sha256": _sha256(url),
                }
            )
    distribution.append(
        {
            "@type": "cr:FileSet",
            "@id": "data-files",
            "name": "data-files",
            "description": "The pairs: one Parquet file per split and shard (data/<split>-NNNNN-of-NNNNN.parquet).",
            "encodingFormat": PARQUET,
            "includes": f"{DATA_DIR}/*.parquet",
        }
    )
    descriptions = _descriptions()
    pair_fields = []
    for column in fields:
        entry = field_for(column, f"pairs/{_escape(column.name)}", "data-files")
        if column.name in descriptions:
            entry["description"] = descriptions[column.name]
        if column.name == "split":
            entry["references"] = {"field": {"@id": "splits/name"}}
        pair_fields.append(entry)
    record_sets: list[dict[str, Any]] = [
        {
            "@type": "cr:RecordSet",
            "@id": "splits",
            "name": "splits",
            "dataType": "cr:Split",
            "key": {"@id": "splits/name"},
            "field": [{"@type": "cr:Field", "@id": "splits/name", "name": "name", "dataType": "sc:Text"}],
            "data": [{"splits/name": split} for split in splits],
        },
        {
            "@type": "cr:RecordSet",
            "@id": "pairs",
            "name": "pairs",
            "description": "Image-caption pairs, one record per row of the data shards.",
            "key": {"@id": "pairs/id"},
            "field": pair_fields,
        },
    ]
    if manifest["rejects"]["total"]:
        distribution.append(
            {
                "@type": "cr:FileSet",
                "@id": "reject-files",
                "name": "reject-files",
                "description": "Inputs that did not become pairs, with stage and reason code.",
                "encodingFormat": PARQUET,
                "includes": f"{REJECTS_DIR}/*.parquet",
            }
        )
        record_sets.append(
            {
                "@type": "cr:RecordSet",
                "@id": "rejects",
                "name": "rejects",
                "description": "Every input that did not make it, and why (reason codes: see the medcorpus README).",
                "field": [field_for(f, f"rejects/{_escape(f.name)}", "reject-files") for f in REJECT_FIELDS],
            }
        )

    pmc = "pmc" in sources
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": "http://mlcommons.org/croissant/1.1",
        "name": name,
        "description": f"{title}. {manifest['outputs']['pairs']} medical image-caption pairs built by medcorpus "
        f"(`{manifest['pipeline']}`, corpus schema {manifest['schema_version']}); splits: "
        + ", ".join(f"{s} {n}" for s, n in manifest["outputs"]["by_split"].items())
        + ".",
        "license": licences or ["unknown: see each record's `license` column"],
        "citeAs": _citation(name, title, pmc),
        "keywords": ["medical imaging", "image-text pairs", "biomedical", "multimodal"],
        "isAccessibleForFree": True,
        "distribution": distribution,
        "recordSet": record_sets,
    }
    if pmc:
        document["creditText"] = PMC_CREDIT
        document["isBasedOn"] = [PMC]
    if manifest.get("attribution"):
        document["creditText"] = " ".join(filter(None, [document.get("creditText"), manifest["attribution"]]))
    return document


def _licences_and_sources(shards: list[str]) -> tuple[list[Any], set[str]]:
    """The licences found in the corpus (as CreativeWorks where they are Creative Commons codes), and
    the sources; only the `license` and `source` columns are read."""
    licences: Counter[str] = Counter()
    sources: set[str] = set()
    for url in shards:
        present = set(shard_columns(url))
        table = read_columns(url, [c for c in ("license", "source") if c in present])
        if "license" in present:
            licences.update(v for v in table["license"].to_pylist() if v)
        if "source" in present:
            sources.update(v for v in table["source"].to_pylist() if v)
    works = []
    for code in sorted(licences):
        work = {"@type": "sc:CreativeWork", "name": code}
        if code in LICENSE_URLS:
            work["url"] = LICENSE_URLS[code]
        else:
            work["description"] = "not a Creative Commons licence: read the article's own licence statement"
        works.append(work)
    return works, sources


def _citation(name: str, title: str, pmc: bool) -> str:
    entry = f"@misc{{{_escape(name)},\n  title = {{{title}}},\n  note = {{Built with medcorpus}}\n}}"
    return entry + ("\n" + PMC_CITATION if pmc else "")


def _sha256(url: str) -> str:
    digest = hashlib.sha256()
    filesystem, path = fs.filesystem(url)
    with filesystem.open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def write_croissant(corpus: str, manifest: dict[str, Any], name: str, title: str) -> str:
    """Write `<corpus>/croissant.json`; returns its path."""
    document = build_croissant(corpus, manifest, name, title)
    filesystem, path = fs.filesystem(corpus)
    with filesystem.open(fs.join(path, CROISSANT), "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return fs.join(corpus, CROISSANT)
