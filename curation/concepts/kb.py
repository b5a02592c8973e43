"""Build, cache and load concept knowledge bases, all from local files.

A built KB directory holds:

    kb.jsonl                     scispacy `Entity` records (concept_id, canonical_name, aliases, types)
    umls_semantic_type_tree.tsv  the semantic network tree (scispacy publishes it only at a URL)
    linker/                      TF-IDF vectorizer, vectors, nmslib index, alias list (scispacy LinkerPaths)
    kb_meta.json                 identity (name, version, concept count), build options and RRF statistics

Three ways to get one: `build_kb` from a licensed UMLS release (MRCONSO.RRF + MRSTY.RRF),
`load_scispacy_kb` over scispacy's own KB/index files already on disk, and `default_kb_dir` for the
small bundled sample, built from its RRF files on first use into a cache keyed by their hash.
Nothing here downloads: every path scispacy would otherwise treat as a URL is a local file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from connectors import fs
from connectors.local_copy import is_remote, local_copy, remote_files
from curation.concepts.errors import ConceptKbError
from curation.concepts.index import LINKER_FILES, build_tfidf_ann_index
from curation.concepts.rrf import read_rrf

log = logging.getLogger(__name__)

# Bump when the on-disk layout or the way vectors are built changes: it is part of the cache key.
KB_FORMAT = 1
KB_FILE = "kb.jsonl"
META_FILE = "kb_meta.json"
TREE_FILE = "umls_semantic_type_tree.tsv"
LINKER_DIR = "linker"
SAMPLE_NAME = "medcorpus-umls-sample"


def _data_path(*parts: str) -> Path:
    return Path(str(resources.files("curation") / "data" / Path(*parts)))


def bundled_rrf_dir() -> Path:
    """The bundled sample Metathesaurus (a few hundred real concepts in RRF layout)."""
    return _data_path("umls_sample")


def semantic_type_tree_path() -> Path:
    return _data_path(TREE_FILE)


def caption_vocabulary_path() -> Path:
    """Ordinary caption words the TF-IDF vocabulary is fitted on besides the aliases (see index.py)."""
    return _data_path("caption_vocabulary.txt")


@dataclass(frozen=True)
class KbIdentity:
    name: str
    version: str
    concepts: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _release_version(rrf_dir: Path) -> str | None:
    """The release name a UMLS download records (`release.dat`: umls.release.name=2024AB), if any.

    `release.txt` is read the same way (the bundled sample ships one: package data has no *.dat).
    """
    names = ("release.dat", "release.txt")
    for candidate in [d / n for d in (rrf_dir, rrf_dir.parent) for n in names]:
        if candidate.is_file():
            for line in candidate.read_text(encoding="utf-8", errors="replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip() in ("umls.release.name", "release.name") and value.strip():
                    return value.strip()
    return None


def _read_vocabulary(paths: Iterable[str | Path]) -> list[str]:
    lines: list[str] = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines.extend(line.strip() for line in fh if line.strip())
    return lines


def build_kb(
    rrf_dir: str | Path,
    out_dir: str | Path,
    *,
    sources: Iterable[str] | None = None,
    languages: Iterable[str] = ("ENG",),
    include_suppressed: bool = False,
    name: str = "umls",
    version: str | None = None,
    vocabulary_files: Iterable[str | Path] | None = None,
    hnsw_m: int = 30,
    ef_construction: int = 200,
    threads: int = 1,
    overwrite: bool = False,
) -> KbIdentity:
    """Build a KB directory from MRCONSO.RRF + MRSTY.RRF and return its identity.

    `sources` restricts to these source vocabularies (SAB, e.g. MSH, SNOMEDCT_US); None keeps all.
    `version` defaults to the release name in `release.dat` next to the RRF files, else "unknown".
    `vocabulary_files`: plain-text files (one caption or word a line) the TF-IDF vocabulary is fitted on
    besides the aliases; None uses the bundled caption vocabulary.
    The directory is written under a temporary name and renamed into place, so a reader never sees a
    half-built KB. Raises ConceptKbError("rrf_missing" | "rrf_malformed" | "kb_empty"), and
    FileExistsError when out_dir exists and overwrite is false.
    """
    started = time.monotonic()
    rrf_dir = Path(rrf_dir)
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists; pass overwrite=True to rebuild it")
    concepts, stats = read_rrf(
        rrf_dir, sources=sources, languages=languages, include_suppressed=include_suppressed
    )
    if not concepts:
        raise ConceptKbError(
            "kb_empty", f"no concept of {rrf_dir} passed the language/suppression/source filters"
        )

    aliases = sorted({a for c in concepts for a in (c.canonical_name, *c.aliases)})
    vocab_paths = list(vocabulary_files) if vocabulary_files is not None else [caption_vocabulary_path()]
    identity = KbIdentity(
        name=name, version=version or _release_version(rrf_dir) or "unknown", concepts=len(concepts)
    )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        with open(tmp / KB_FILE, "w", encoding="utf-8") as fh:
            for c in concepts:
                record = {
                    "concept_id": c.cui,
                    "canonical_name": c.canonical_name,
                    "aliases": c.aliases,
                    "types": c.types,
                }
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        shutil.copyfile(semantic_type_tree_path(), tmp / TREE_FILE)
        indexed = build_tfidf_ann_index(
            aliases,
            tmp / LINKER_DIR,
            vocabulary_texts=_read_vocabulary(vocab_paths),
            hnsw_m=hnsw_m,
            ef_construction=ef_construction,
            threads=threads,
        )
        meta = {
            "format": KB_FORMAT,
            **identity.as_dict(),
            "aliases": len(aliases),
            "aliases_indexed": indexed,
            "rrf_dir": str(rrf_dir),
            "sources": sorted(sources) if sources else None,
            "languages": sorted(languages),
            "include_suppressed": include_suppressed,
            "rrf_stats": dataclasses.asdict(stats),
            "vocabulary_files": [str(p) for p in vocab_paths],
            "index": {"hnsw_m": hnsw_m, "ef_construction": ef_construction},
            "build_seconds": round(time.monotonic() - started, 2),
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "built KB %s (%d concepts, %d aliases) in %.1fs",
        out_dir,
        identity.concepts,
        indexed,
        meta["build_seconds"],
    )
    return identity


def read_identity(kb_dir: str | Path) -> KbIdentity:
    """The KB's identity; a `gs://` / `s3://` (any fsspec URL) KB is checked and read where it is, without
    copying it (the launcher only needs its metadata; workers copy it in `load_kb`)."""
    meta = _read_remote_meta(str(kb_dir)) if is_remote(kb_dir) else _read_meta(Path(kb_dir))
    return KbIdentity(name=meta["name"], version=meta["version"], concepts=meta["concepts"])


REQUIRED_FILES = (META_FILE, KB_FILE, TREE_FILE, *(f"{LINKER_DIR}/{f}" for f in LINKER_FILES))


def _read_meta(kb_dir: Path) -> dict[str, Any]:
    if not kb_dir.is_dir():
        raise ConceptKbError(
            "kb_missing", f"{kb_dir} is not a directory (build one with `medcorpus umls build`)"
        )
    missing = [p for p in REQUIRED_FILES if not (kb_dir / p).is_file()]
    if missing:
        raise ConceptKbError("kb_incomplete", f"{kb_dir} lacks {', '.join(missing)}")
    return json.loads((kb_dir / META_FILE).read_text(encoding="utf-8"))


def _read_remote_meta(url: str) -> dict[str, Any]:
    try:
        is_dir, files = remote_files(url)
    except FileNotFoundError:
        is_dir, files = False, {}
    if not is_dir:
        raise ConceptKbError("kb_missing", f"{url} is not a folder (build one with `medcorpus umls build`)")
    missing = [p for p in REQUIRED_FILES if p not in files]
    if missing:
        raise ConceptKbError("kb_incomplete", f"{url} lacks {', '.join(missing)}")
    return json.loads(fs.read_bytes(f"{url.rstrip('/')}/{META_FILE}").decode("utf-8"))


@dataclass
class LoadedKb:
    """Everything a linker needs, loaded once: the scispacy KB, its linker paths and identity."""

    kb: Any  # scispacy.linking_utils.KnowledgeBase
    linker_paths: Any  # scispacy.candidate_generation.LinkerPaths
    identity: KbIdentity


def _require_scispacy() -> None:
    try:
        import scispacy  # noqa: F401
    except ImportError as exc:
        raise ConceptKbError(
            "dependency_missing", "concept tagging needs scispacy: pip install 'medcorpus[concepts]'"
        ) from exc


def load_kb(kb_dir: str | Path) -> LoadedKb:
    """Load a KB directory written by build_kb. Raises ConceptKbError("kb_missing" | "kb_incomplete").

    A KB at a URL (`gs://`, `s3://`, `file://`) is copied once to this machine's cache and loaded from
    there: scispacy and nmslib read local files only, and every worker of a distributed run loads it."""
    if is_remote(kb_dir):
        read_identity(kb_dir)  # the same errors as for a local folder, before anything is copied
        kb_dir = local_copy(kb_dir)
    kb_dir = Path(kb_dir)
    meta = _read_meta(kb_dir)
    return load_scispacy_kb(
        kb_dir / KB_FILE,
        kb_dir / LINKER_DIR,
        types_path=kb_dir / TREE_FILE,
        name=meta["name"],
        version=meta["version"],
    )


def load_scispacy_kb(
    kb_path: str | Path,
    linker_dir: str | Path,
    *,
    types_path: str | Path | None = None,
    name: str = "scispacy-umls",
    version: str = "unknown",
) -> LoadedKb:
    """Use scispacy's own KB and index files already on disk (e.g. `umls_2022_ab_cat0129.jsonl` and the
    directory holding `nmslib_index.bin`, `tfidf_vectorizer.joblib`, `tfidf_vectors_sparse.npz`,
    `concept_aliases.json`). Local paths only; the semantic type tree defaults to the bundled one.
    """
    _require_scispacy()
    from scispacy.candidate_generation import LinkerPaths
    from scispacy.linking_utils import UmlsKnowledgeBase

    kb_path, linker_dir = Path(kb_path), Path(linker_dir)
    if not kb_path.is_file():
        raise ConceptKbError("kb_missing", f"{kb_path} not found")
    if not linker_dir.is_dir():
        raise ConceptKbError("kb_missing", f"{linker_dir} is not a directory")
    paths = LinkerPaths.from_directory(linker_dir)
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise ConceptKbError(
            "kb_incomplete", f"{linker_dir} lacks {', '.join(Path(p).name for p in missing)}"
        )
    kb = UmlsKnowledgeBase(str(kb_path), str(types_path or semantic_type_tree_path()))
    return LoadedKb(kb=kb, linker_paths=paths, identity=KbIdentity(name, version, len(kb.cui_to_entity)))


def cache_root() -> Path:
    """$MEDCORPUS_CACHE, else ~/.cache/medcorpus."""
    env = os.environ.get("MEDCORPUS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "medcorpus"


def _bundled_inputs_hash() -> str:
    digest = hashlib.sha256(f"format={KB_FORMAT}".encode())
    rrf_dir = bundled_rrf_dir()
    inputs = (rrf_dir / "MRCONSO.RRF", rrf_dir / "MRSTY.RRF", rrf_dir / "release.txt")
    for path in (*inputs, semantic_type_tree_path(), caption_vocabulary_path()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def default_kb_dir(cache_dir: str | Path | None = None) -> Path:
    """The bundled sample KB, built on first use under the cache and reused after.

    Keyed by a hash of the bundled inputs, so editing them builds a new KB beside the old one. Parallel
    workers may both build; each writes its own temporary directory and the first rename wins.
    """
    digest = _bundled_inputs_hash()
    target = Path(cache_dir) if cache_dir is not None else cache_root()
    kb_dir = target / "kb" / f"{SAMPLE_NAME}-{digest[:16]}"
    if (kb_dir / META_FILE).is_file():
        return kb_dir
    tmp_out = Path(tempfile.mkdtemp(prefix=".build-", dir=_mkdir(target / "kb"))) / "kb"
    try:
        release = _release_version(bundled_rrf_dir()) or "sample"
        build_kb(bundled_rrf_dir(), tmp_out, name=SAMPLE_NAME, version=f"{release}+{digest[:12]}")
        try:
            os.rename(tmp_out, kb_dir)
        except OSError:
            if not (kb_dir / META_FILE).is_file():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp_out.parent, ignore_errors=True)
    return kb_dir


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
