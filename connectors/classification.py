"""Readers for image classification datasets: image folders, CSV/JSONL manifests and HF datasets.

Every reader yields, in a deterministic order, either a :class:`ClassificationSample` or a
:class:`ManifestRowError` for an entry that cannot become one (missing path or label, unknown split,
duplicate sample, malformed row). Errors are yielded, not raised, so that one bad row never stops a
run and the pipeline turns each into a reject record; nothing is skipped silently except hidden
files (names starting with ".") in image folders.

Paths go through fsspec, so manifests and folders may live on ``s3://``, ``gs://`` or ``https://``.
Images are not read here (see :func:`read_image_bytes`), so a reader only lists.
"""

from __future__ import annotations

import csv
import json
import math
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec

from connectors.images import ImageError, ImageOptions
from connectors.splits import SplitRatios, assign_split
from schemas.errors import ReasonError

_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}
_MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")
_LABEL_SEPARATORS = (";", "|")


@dataclass
class ClassificationSample:
    sample_id: str  # relative path without extension and "../" (folder/manifest) or "<split>-<index>" (HF)
    labels: list[str]  # positive labels only
    uri: str | None  # fsspec path/URL of the image file; None when the bytes are inline
    image_bytes: bytes | None  # inline bytes (HF datasets)
    image_name: str  # file name used for format dispatch
    split: str | None  # "train" | "validation" | "test" when the source gives one, else None
    group: str | None  # patient_id or study_id when given: the split unit, never written out raw
    uncertain_labels: list[str] = field(default_factory=list)  # uncertain (-1) labels: never captioned


@dataclass(frozen=True)
class ManifestRowError:
    """An entry of a dataset that is not a usable sample. `reason` is a short stable code:
    ``path_missing``, ``label_missing``, ``label_invalid``, ``split_unknown``, ``duplicate_sample``,
    ``manifest_row_malformed``, ``image_missing``."""

    source: str  # the manifest, folder or HF dataset
    row_number: int | None  # 1-based line of the manifest (CSV: the line the record ends on); HF: index
    reason: str
    detail: str = ""
    sample_id: str | None = None  # when the entry names one


DatasetItem = ClassificationSample | ManifestRowError


def canonical_split(value: Any) -> str | None:
    """ "train" | "validation" | "test" for the usual spellings, None for empty; ValueError otherwise."""
    text = str(value).strip().lower() if value is not None else ""
    if not text:
        return None
    if text not in _SPLIT_ALIASES:
        raise ValueError(f"unknown split {value!r} (expected one of {sorted(_SPLIT_ALIASES)})")
    return _SPLIT_ALIASES[text]


def strip_extension(path: str) -> str:
    if path.lower().endswith(".nii.gz"):
        return path[: -len(".nii.gz")]
    return posixpath.splitext(path)[0]


# ---------------------------------------------------------------------------------------------- folders


def read_image_folder(root: str) -> Iterator[DatasetItem]:
    """``root/<class>/.../<image>``, or ``root/<split>/<class>/.../<image>`` when every top-level folder
    is a split name (train, val, test, ...). Files directly under the root (or directly under a split
    folder) have no class and are reported as ``label_missing``."""
    fs, base = fsspec.core.url_to_fs(root)
    base = base.rstrip("/")
    if not fs.isdir(base):
        raise NotADirectoryError(f"{root} is not a directory")
    relative = [p[len(base) + 1 :] for p in sorted(fs.find(base))]
    relative = [r for r in relative if not any(part.startswith(".") for part in r.split("/"))]
    top_folders = {r.split("/")[0] for r in relative if "/" in r}
    by_split = bool(top_folders) and all(f.lower() in _SPLIT_ALIASES for f in top_folders)
    seen: set[str] = set()
    for rel in relative:
        parts = rel.split("/")
        class_depth = 1 if by_split else 0
        sample_id = strip_extension(rel)
        if len(parts) < class_depth + 2:
            yield ManifestRowError(
                root, None, "label_missing", "the file is not inside a class folder", sample_id
            )
            continue
        if sample_id in seen:
            yield ManifestRowError(
                root,
                None,
                "duplicate_sample",
                "another file has the same name but another extension",
                sample_id,
            )
            continue
        seen.add(sample_id)
        yield ClassificationSample(
            sample_id=sample_id,
            labels=[parts[class_depth]],
            uri=fs.unstrip_protocol(f"{base}/{rel}") if "://" in root else f"{base}/{rel}",
            image_bytes=None,
            image_name=parts[-1],
            split=_SPLIT_ALIASES[parts[0].lower()] if by_split else None,
            group=None,
        )


# -------------------------------------------------------------------------------------------- manifests


def read_manifest(
    path: str, label_columns: Iterable[str] | None = None, root: str | None = None
) -> Iterator[DatasetItem]:
    """A CSV/TSV or JSONL manifest (optionally compressed: .csv.gz, ...), one image per row.

    Fields: ``path`` (relative to the manifest's folder, or absolute / a URL); ``label`` (one) or
    ``labels`` (a JSON list, or ``;``/``|``-separated text in CSV); optional ``uncertain_labels``,
    ``split``, ``patient_id``, ``study_id``. With `label_columns` the manifest is "wide" (CheXpert,
    MIMIC-CXR): each named column holds 1 (positive), -1 (uncertain), 0 or empty (negative), and a row
    with no positive label is a valid sample with ``labels == []``.

    Paths are relative to `root` (default: the manifest's folder) and must stay inside it: absolute
    paths, URLs and paths that climb out with ``..`` are ``path_outside_dataset``. CheXpert's CSVs name
    files from the folder above their own (``CheXpert-v1.0/train/...``): pass that folder as `root`.
    """
    columns = list(label_columns or [])
    kind = _manifest_kind(path)
    protocol, _, local = (root or path).rpartition("://")
    prefix = f"{protocol}://" if protocol else ""
    base_dir = local.rstrip("/") if root else posixpath.dirname(local)
    seen: set[str] = set()
    for row_number, record in _manifest_records(path, kind):
        if isinstance(record, ManifestRowError):
            yield record
            continue
        item = _sample_from_record(record, columns, prefix, base_dir, path, row_number)
        if isinstance(item, ClassificationSample):
            if item.sample_id in seen:
                item = ManifestRowError(path, row_number, "duplicate_sample", "listed twice", item.sample_id)
            else:
                seen.add(item.sample_id)
        yield item


def _manifest_kind(path: str) -> str:
    lower = path.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        lower = lower.removesuffix(suffix)
    if not lower.endswith(_MANIFEST_SUFFIXES):
        raise ValueError(f"{path}: a manifest must be .csv, .tsv, .jsonl or .ndjson")
    return "jsonl" if lower.endswith((".jsonl", ".ndjson")) else lower[-3:]


def _manifest_records(path: str, kind: str) -> Iterator[tuple[int, dict[str, Any] | ManifestRowError]]:
    # utf-8-sig: Excel writes a byte-order mark, which would otherwise rename the first column "\ufeffpath".
    with fsspec.open(path, "rt", encoding="utf-8-sig", newline="", compression="infer") as f:
        if kind == "jsonl":
            for row_number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    record = ManifestRowError(
                        path, row_number, "manifest_row_malformed", f"invalid JSON: {e}"
                    )
                if not isinstance(record, dict | ManifestRowError):
                    record = ManifestRowError(path, row_number, "manifest_row_malformed", "not a JSON object")
                yield row_number, record
        else:
            reader = csv.DictReader(f, delimiter="\t" if kind == "tsv" else ",")
            _check_header(path, reader.fieldnames or [])
            for record in reader:
                if None in record:  # more cells than header columns
                    yield (
                        reader.line_num,
                        ManifestRowError(
                            path, reader.line_num, "manifest_row_malformed", "more cells than header columns"
                        ),
                    )
                    continue
                yield reader.line_num, record


class ManifestError(ReasonError, ValueError):
    """A manifest that cannot describe any sample (`manifest_columns`): an error, not a reject per row."""


def _check_header(path: str, columns: list[str]) -> None:
    if "path" not in columns:
        raise ManifestError(
            "manifest_columns",
            f"{path}: the header has no 'path' column (it has {', '.join(map(repr, columns)) or 'nothing'}); "
            "rename the column that holds the image paths to 'path'",
        )


def _sample_from_record(
    record: dict[str, Any], label_columns: list[str], prefix: str, base_dir: str, source: str, row_number: int
) -> DatasetItem:
    rel = str(record.get("path") or "").strip()
    if not rel:
        return ManifestRowError(source, row_number, "path_missing", "no 'path' value")
    rel_local = rel.rpartition("://")[2]
    parts = [p for p in posixpath.normpath(rel_local).split("/") if p not in ("", ".", "..")]
    sample_id = strip_extension("/".join(parts))
    if "://" in rel or rel.startswith(("/", "\\")) or posixpath.normpath(rel).startswith(".."):
        # Only files inside the dataset's own folder: a manifest must not read /etc/passwd or ../../secrets.
        return ManifestRowError(
            source,
            row_number,
            "path_outside_dataset",
            "paths must be relative and stay inside the manifest's folder",
            sample_id,
        )

    def error(reason: str, detail: str) -> ManifestRowError:
        return ManifestRowError(source, row_number, reason, detail, sample_id)

    labels = _label_list(record.get("labels") if "labels" in record else record.get("label"))
    uncertain = _label_list(record.get("uncertain_labels"))
    for column in label_columns:
        state = _label_state(record.get(column))
        if state is None:
            return error("label_invalid", f"column {column!r} holds {record.get(column)!r}, not 1/0/-1/empty")
        if state == 1:
            labels.append(column)
        elif state == -1:
            uncertain.append(column)
    if not labels and not label_columns:
        return error("label_missing", "no 'label' or 'labels' value")
    try:
        split = canonical_split(record.get("split"))
    except ValueError as e:
        return error("split_unknown", str(e))
    group = _text(record.get("patient_id")) or _text(record.get("study_id"))
    uri = prefix + posixpath.normpath(posixpath.join(base_dir, rel))
    return ClassificationSample(
        sample_id=sample_id,
        labels=list(dict.fromkeys(labels)),
        uri=uri,
        image_bytes=None,
        image_name=posixpath.basename(rel_local),
        split=split,
        group=group,
        uncertain_labels=[u for u in dict.fromkeys(uncertain) if u not in labels],
    )


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value).strip() or None


def _label_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        items = [_text(v) for v in value]
    elif isinstance(value, str):
        items = [value]
        for separator in _LABEL_SEPARATORS:
            items = [part for item in items for part in item.split(separator)]
        items = [_text(v) for v in items]
    else:
        items = [_text(value)]
    return list(dict.fromkeys(v for v in items if v))


def _label_state(value: Any) -> int | None:
    """1, -1 or 0 for a wide-manifest cell; None when the value is not one of those."""
    text = _text(value)
    if text is None:
        return 0
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number in (1.0, 0.0, -1.0) else None


# ------------------------------------------------------------------------------------------ HF datasets


def read_hf_dataset(
    path: str, label_column: str | None = None, image_column: str | None = None
) -> Iterator[DatasetItem]:
    """A dataset saved with ``save_to_disk`` (Dataset or DatasetDict), or a local data folder that
    ``datasets.load_dataset`` reads (Parquet/Arrow files). Without explicit columns, the first
    ``Image`` column is the image and the first ``ClassLabel`` (or list of ClassLabel) column the
    label; ClassLabel ids are turned into their names. Split names are canonicalised; a split
    with another name ("unlabeled", ...) gives samples with ``split=None``."""
    import datasets  # heavy: loaded only for HF inputs

    loaded = _load_hf(path, datasets)
    if isinstance(loaded, datasets.DatasetDict):
        parts = sorted(loaded.items())
    else:
        parts = [(str(loaded.split) if loaded.split else None, loaded)]
    for split_name, ds in parts:
        image_col = image_column or _first_column(ds, lambda f: isinstance(f, datasets.Image), "an Image")
        label_col = label_column or _first_column(ds, _is_class_label, "a ClassLabel")
        ds = ds.cast_column(image_col, datasets.Image(decode=False))
        to_labels = _label_decoder(ds.features[label_col], datasets)
        group_cols = [c for c in ("patient_id", "study_id") if c in ds.column_names]
        split = _SPLIT_ALIASES.get((split_name or "").lower())
        for index, row in enumerate(ds.select_columns([image_col, label_col, *group_cols])):
            sample_id = f"{split_name or 'data'}-{index}"
            image = row[image_col] or {}
            data, image_path = image.get("bytes"), image.get("path")
            if data is None and not image_path:
                yield ManifestRowError(path, index, "image_missing", f"empty {image_col!r}", sample_id)
                continue
            labels = to_labels(row[label_col])
            if not labels:
                yield ManifestRowError(path, index, "label_missing", f"no value in {label_col!r}", sample_id)
                continue
            yield ClassificationSample(
                sample_id=sample_id,
                labels=labels,
                uri=image_path if data is None else None,
                image_bytes=data,
                image_name=posixpath.basename(image_path) if image_path else sample_id,
                split=split,
                group=next((g for g in (_text(row[c]) for c in group_cols) if g), None),
            )


def _load_hf(path: str, datasets: Any) -> Any:
    fs, local = fsspec.core.url_to_fs(path)
    if fs.exists(f"{local}/dataset_dict.json") or fs.exists(f"{local}/state.json"):
        return datasets.load_from_disk(path)
    return datasets.load_dataset(path)


def _is_class_label(feature: Any) -> bool:
    import datasets

    inner = getattr(feature, "feature", None)
    return isinstance(feature, datasets.ClassLabel) or isinstance(inner, datasets.ClassLabel)


def _first_column(ds: Any, test: Any, what: str) -> str:
    for name, feature in ds.features.items():
        if test(feature):
            return name
    raise ValueError(f"no {what} column in {list(ds.features)}; name it explicitly")


def _label_decoder(feature: Any, datasets: Any):
    """A function from a label cell to the list of label names."""
    inner = getattr(feature, "feature", None)
    names = feature if isinstance(feature, datasets.ClassLabel) else inner

    def decode(value: Any) -> list[str]:
        values = value if isinstance(value, list) else [value]
        out = []
        for v in values:
            if isinstance(names, datasets.ClassLabel):
                if v is None or v < 0:  # -1: ClassLabel's "no label"
                    continue
                out.append(names.int2str(int(v)))
            elif _text(v):
                out.append(_text(v))
        return list(dict.fromkeys(out))

    return decode


# -------------------------------------------------------------------------------------- entry points


def open_classification_dataset(
    spec: str,
    *,
    label_column: str | None = None,
    image_column: str | None = None,
    label_columns: Iterable[str] | None = None,
    root: str | None = None,
) -> Iterator[DatasetItem]:
    """Read `spec` with the matching reader: a manifest file (.csv/.tsv/.jsonl, maybe compressed; its
    paths relative to `root`, by default its own folder), a folder saved by ``datasets`` or holding
    Parquet/Arrow files (HF), or an image folder."""
    lower = spec.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        lower = lower.removesuffix(suffix)
    if lower.endswith(_MANIFEST_SUFFIXES):
        return read_manifest(spec, label_columns, root)
    fs, local = fsspec.core.url_to_fs(spec)
    if not fs.isdir(local):
        raise ValueError(f"{spec}: not a manifest (.csv/.tsv/.jsonl) nor a folder")
    names = [posixpath.basename(p.rstrip("/")) for p in fs.ls(local, detail=False)]
    if fs.isdir(f"{local}/data"):
        names += [posixpath.basename(p.rstrip("/")) for p in fs.ls(f"{local}/data", detail=False)]
    is_hf = any(n in ("dataset_dict.json", "state.json") or n.endswith((".parquet", ".arrow")) for n in names)
    if is_hf:
        return read_hf_dataset(spec, label_column, image_column)
    return read_image_folder(spec)


def read_image_bytes(sample: ClassificationSample, max_bytes: int = ImageOptions().max_input_bytes) -> bytes:
    """The sample's image file. Raises ImageError: ``image_missing``, ``image_read``, ``image_too_large``."""
    if sample.image_bytes is not None:
        data = sample.image_bytes
    elif not sample.uri:
        raise ImageError("image_missing", f"{sample.sample_id}: no image bytes and no uri")
    else:
        try:
            with fsspec.open(sample.uri, "rb") as f:
                data = f.read(max_bytes + 1)
        except FileNotFoundError:
            raise ImageError("image_missing", f"{sample.uri} does not exist") from None
        except OSError as e:
            raise ImageError("image_read", f"{sample.uri}: {type(e).__name__}: {e}") from None
    if len(data) > max_bytes:
        raise ImageError("image_too_large", f"{sample.sample_id}: more than {max_bytes} bytes")
    return data


def split_for(sample: ClassificationSample, ratios: SplitRatios = SplitRatios(), salt: str = "") -> str:
    """The given split if the source has one, else a stable hash of the patient/study (or the sample)."""
    return sample.split or assign_split(sample.group or sample.sample_id, ratios, salt)
