"""Every pipeline writes unique record ids, in its most demanding mode."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from connectors.corpus import corpus_rows
from pipelines.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
CLASSIFICATION = [
    "--dataset",
    str(SAMPLE / "classification" / "manifest.csv"),
    "--card",
    str(SAMPLE / "classification" / "card.yaml"),
]


def ids(corpus: Path) -> list[str]:
    return [r["id"] for r in corpus_rows(str(corpus), columns=["id"])]


def assert_unique(corpus: Path) -> list[str]:
    found = ids(corpus)
    repeated = [i for i, n in Counter(found).items() if n > 1]
    assert found and not repeated, repeated
    return found


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("unique")
    runs = {
        "pmc_all_versions": ["ingest", "pmc", "--source", str(SAMPLE / "pmc-cloud"), "--all-versions"],
        "pmc_legacy": ["ingest", "pmc", "--source", str(SAMPLE / "pmc-legacy")],
        "cls_records": [
            "ingest",
            "classification",
            *CLASSIFICATION,
            "--caption-mode",
            "records",
            "--cache-dir",
            "none",
        ],
    }
    out = {}
    for name, args in runs.items():
        out[name] = root / name
        assert main([*args, "--out", str(out[name])]) == 0, name
    out["tagged"] = root / "tagged"
    assert main(["tag", "--in", str(out["pmc_all_versions"]), "--out", str(out["tagged"])]) == 0
    out["balanced"] = root / "balanced"
    assert (
        main(["balance", "--in", str(out["tagged"]), "--out", str(out["balanced"]), "--max-per-concept", "2"])
        == 0
    )
    out["deduped"] = root / "deduped"
    inputs = [
        "--in",
        str(out["pmc_all_versions"]),
        "--in",
        str(out["pmc_legacy"]),
        "--in",
        str(out["cls_records"]),
    ]
    assert main(["dedupe", *inputs, "--out", str(out["deduped"])]) == 0
    return out


@pytest.mark.parametrize(
    "name", ["pmc_all_versions", "pmc_legacy", "cls_records", "tagged", "balanced", "deduped"]
)
def test_ids_are_unique(corpora, name):
    assert_unique(corpora[name])


def test_all_versions_name_the_version_in_the_id(corpora):
    found = ids(corpora["pmc_all_versions"])
    assert any(i.startswith("pmc/PMC1790863.1/") for i in found) and any(
        i.startswith("pmc/PMC1790863.2/") for i in found
    )
