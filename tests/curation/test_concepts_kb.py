"""Building and loading concept KBs from RRF files (curation.concepts.kb / rrf)."""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

import pytest

from curation.concepts import (
    ConceptKbError,
    ConceptTagger,
    build_kb,
    bundled_rrf_dir,
    default_kb_dir,
    load_kb,
    load_scispacy_kb,
    read_identity,
    resolve_semtypes,
)
from curation.concepts.rrf import read_rrf

HEADER = "CUI|LAT|TS|LUI|STT|SUI|ISPREF|AUI|SAUI|SCUI|SDUI|SAB|TTY|CODE|STR|SRL|SUPPRESS|CVF"


def conso(cui, string, *, lat="ENG", ts="S", stt="PF", ispref="Y", sab="MSH", tty="SY", suppress="N"):
    return f"{cui}|{lat}|{ts}|L1|{stt}|S1|{ispref}|A1||||{sab}|{tty}|D1|{string}|0|{suppress}||"


@pytest.fixture
def small_rrf(tmp_path) -> Path:
    """A hand-written release: one non-English row, one suppressed row, two sources."""
    rows = [
        conso("C0023884", "Liver", ts="P", tty="MH"),
        conso("C0023884", "Hepatic structure", sab="SNOMEDCT_US"),
        conso("C0023884", "Foie", lat="FRE", ts="P", tty="MH"),
        conso("C0023884", "Liver, NOS [obsolete]", suppress="O"),
        conso("C0018787", "Heart", ts="P", tty="MH"),
        conso("C0018787", "Cardiac structure", sab="SNOMEDCT_US"),
        # only a non-preferred string: the first kept one becomes the canonical name
        conso("C0040405", "CT scan", ispref="N", sab="SNOMEDCT_US"),
        conso("C0040405", "CT", ispref="N", sab="SNOMEDCT_US", tty="AB"),
    ]
    (tmp_path / "MRCONSO.RRF").write_text("\n".join(rows) + "\n", encoding="utf-8")
    sty = [
        "C0023884|T023|A1.2.3.1|Body Part, Organ, or Organ Component|AT1||",
        "C0018787|T023|A1.2.3.1|x|AT2||",
    ]
    sty += [
        "C0040405|T060|B1.3.1.2|Diagnostic Procedure|AT3||",
        "C9999999|T047|B2.2.1.2.1|Disease or Syndrome|AT4||",
    ]
    (tmp_path / "MRSTY.RRF").write_text("\n".join(sty) + "\n", encoding="utf-8")
    (tmp_path / "release.dat").write_text("umls.release.name=2099AA\n", encoding="utf-8")
    return tmp_path


def test_read_rrf_keeps_english_non_suppressed_rows(small_rrf):
    concepts, stats = read_rrf(small_rrf)
    by_cui = {c.cui: c for c in concepts}
    assert set(by_cui) == {"C0023884", "C0018787", "C0040405"}  # C9999999 is only in MRSTY
    assert by_cui["C0023884"].canonical_name == "Liver"
    assert by_cui["C0023884"].aliases == ["Hepatic structure"]  # not "Foie", not the obsolete string
    assert by_cui["C0023884"].types == ["T023"]
    assert by_cui["C0040405"].canonical_name == "CT scan"
    assert (stats.dropped_language, stats.dropped_suppressed, stats.dropped_source) == (1, 1, 0)


def test_read_rrf_source_filter_and_suppressed_option(small_rrf):
    concepts, stats = read_rrf(small_rrf, sources=["MSH"])
    by_cui = {c.cui: c for c in concepts}
    assert set(by_cui) == {"C0023884", "C0018787"}
    assert by_cui["C0018787"].aliases == []
    assert stats.dropped_source == 4
    concepts, _ = read_rrf(small_rrf, include_suppressed=True, languages=["ENG", "FRE"])
    liver = next(c for c in concepts if c.cui == "C0023884")
    assert {"Foie", "Liver, NOS [obsolete]"} <= set(liver.aliases)


def test_read_rrf_errors(tmp_path, small_rrf):
    with pytest.raises(ConceptKbError) as err:
        read_rrf(tmp_path / "nowhere")
    assert err.value.reason == "rrf_missing"
    (small_rrf / "MRCONSO.RRF").write_text("C0023884|ENG|P|truncated row\n", encoding="utf-8")
    with pytest.raises(ConceptKbError) as err:
        read_rrf(small_rrf)
    assert err.value.reason == "rrf_malformed"


def test_build_kb_from_small_release(small_rrf, tmp_path):
    out = tmp_path / "kb"
    identity = build_kb(small_rrf, out)
    assert identity.as_dict() == {"name": "umls", "version": "2099AA", "concepts": 3}
    assert read_identity(out) == identity
    for name in (
        "nmslib_index.bin",
        "tfidf_vectorizer.joblib",
        "tfidf_vectors_sparse.npz",
        "concept_aliases.json",
    ):
        assert (out / "linker" / name).is_file()
    meta = json.loads((out / "kb_meta.json").read_text())
    assert meta["rrf_stats"]["dropped_suppressed"] == 1
    loaded = load_kb(out)
    assert loaded.kb.alias_to_cuis["CT"] == {"C0040405"}
    assert "Foie" not in loaded.kb.alias_to_cuis
    tagger = ConceptTagger(loaded_kb=loaded, model=None)
    assert [c.cui for c in tagger.tag("CT of the liver")] == ["C0040405", "C0023884"]

    with pytest.raises(FileExistsError):
        build_kb(small_rrf, out)
    with pytest.raises(ConceptKbError) as err:
        build_kb(small_rrf, tmp_path / "kb2", sources=["NCI"])
    assert err.value.reason == "kb_empty"


def test_bundled_kb_contents(sample_kb_dir):
    loaded = load_kb(sample_kb_dir)
    cuis_in_rrf = {
        line.split("|")[0]
        for line in (bundled_rrf_dir() / "MRCONSO.RRF").read_text().splitlines()
        if line.split("|")[1] == "ENG"
    }
    assert loaded.identity.name == "medcorpus-umls-sample"
    assert loaded.identity.concepts == len(cuis_in_rrf) == len(loaded.kb.cui_to_entity)
    assert loaded.identity.concepts >= 300
    ct = loaded.kb.cui_to_entity["C0040405"]
    assert ct.canonical_name == "X-Ray Computed Tomography"
    assert {"CT", "Computed tomography", "CAT scan"} <= set(ct.aliases)
    assert ct.types == ["T060"]
    assert loaded.kb.cui_to_entity["C0023884"].types == ["T023"]
    assert "Foie" not in loaded.kb.alias_to_cuis  # French row dropped
    assert not any("[obsolete]" in a for a in loaded.kb.alias_to_cuis)  # suppressed rows dropped
    tree = loaded.kb.semantic_type_tree
    assert len(tree.type_id_to_node) == 128  # 127 semantic types + the root
    assert tree.get_parent(tree.get_node_from_id("T191")).type_id == "T047"


def test_default_kb_dir_is_reused(sample_kb_dir):
    meta = sample_kb_dir / "kb_meta.json"
    before = meta.stat().st_mtime_ns
    assert default_kb_dir(cache_dir=sample_kb_dir.parent.parent) == sample_kb_dir
    assert meta.stat().st_mtime_ns == before
    assert [p.name for p in sample_kb_dir.parent.iterdir() if p.name.startswith(".")] == []


def test_load_errors(tmp_path, sample_kb_dir):
    with pytest.raises(ConceptKbError) as err:
        load_kb(tmp_path / "missing")
    assert err.value.reason == "kb_missing"
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "kb_meta.json").write_text("{}")
    with pytest.raises(ConceptKbError) as err:
        load_kb(tmp_path / "partial")
    assert err.value.reason == "kb_incomplete"
    # scispacy's own file layout, from local paths
    loaded = load_scispacy_kb(
        sample_kb_dir / "kb.jsonl", sample_kb_dir / "linker", name="scispacy", version="x"
    )
    assert loaded.identity.concepts == read_identity(sample_kb_dir).concepts
    with pytest.raises(ConceptKbError) as err:
        load_scispacy_kb(sample_kb_dir / "kb.jsonl", tmp_path)
    assert err.value.reason == "kb_incomplete"


def test_resolve_semtypes():
    assert resolve_semtypes(None) is None
    assert resolve_semtypes(["t047", "organisms"]) >= {"T047", "T005", "T007"}
    with pytest.raises(ConceptKbError) as err:
        resolve_semtypes(["dsyn-typo"])
    assert err.value.reason == "semtype_unknown"


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection or resolve a name fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_build_load_and_tag_without_network(no_network, tmp_path):
    kb_dir = default_kb_dir(cache_dir=tmp_path)
    tagger = ConceptTagger(kb_dir, model=None)
    assert [c.cui for c in tagger.tag("MRI of the brain")] == ["C0024485", "C0006104"]


def test_cli_umls_build_and_info(tmp_path, small_rrf, capsys):
    from pipelines.commands import umls

    parser = argparse.ArgumentParser()
    umls.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["umls", "build", "--rrf-dir", str(small_rrf), "--out", str(tmp_path / "kb")])
    assert args.func(args, []) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "2099AA"
    args = parser.parse_args(["umls", "info", str(tmp_path / "kb")])
    assert args.func(args, []) == 0
    assert json.loads(capsys.readouterr().out)["concepts"] == 3
    args = parser.parse_args(
        ["umls", "build", "--rrf-dir", str(tmp_path / "none"), "--out", str(tmp_path / "x")]
    )
    assert args.func(args, []) == 2
    assert "rrf_missing" in capsys.readouterr().err
