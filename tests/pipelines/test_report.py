"""The corpus report (`report.html`, `medcorpus report`, `medcorpus stats`) and `croissant.json`, on the
demo's chain of corpora built from the bundled sample data: ingest PMC and classification, dedupe them
together, tag, balance. Every run writes both documents; the page is opened in a real headless
Chromium (Debian's package: `make test` installs it when missing)."""

from __future__ import annotations

import itertools
import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from connectors.corpus import corpus_rows, read_manifest
from connectors.report import compute_stats, corpus_tables, format_text, render_report
from pipelines.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report-chain")
    c = {name: root / name for name in ("pmc", "classification", "corpus", "tagged", "balanced")}
    steps = [
        ["ingest", "pmc", "--source", str(SAMPLE / "pmc-cloud"), "--out", str(c["pmc"]), "--splits", "60/20/20"],
        [
            "ingest", "classification", "--dataset", str(SAMPLE / "classification" / "manifest.csv"),
            "--card", str(SAMPLE / "classification" / "card.yaml"), "--out", str(c["classification"]),
            "--splits", "50/25/25", "--cache-dir", "none",
        ],
        ["dedupe", "--in", str(c["pmc"]), "--in", str(c["classification"]), "--out", str(c["corpus"])],
        ["tag", "--in", str(c["corpus"]), "--out", str(c["tagged"])],
        ["balance", "--in", str(c["tagged"]), "--out", str(c["balanced"]), "--max-per-concept", "3"],
    ]  # fmt: skip
    for argv in steps:
        assert main(argv) == 0, argv
    return c


QUERY_SECTION = "## Looking at a corpus and querying it"


def readme_python_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split(QUERY_SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_query_examples_run(chain, tmp_path, monkeypatch, capsys):
    """Every Python block of the README's query section, run as written against a tagged corpus at the
    README's path. The bucket example runs against fsspec's in-memory filesystem standing in for
    `gs://` (no network here): the corpus is copied there and only the URL scheme is swapped."""
    import fsspec

    (tmp_path / "out" / "demo").mkdir(parents=True)
    (tmp_path / "out" / "demo" / "pmc-tagged").symlink_to(chain["tagged"])
    monkeypatch.chdir(tmp_path)
    memory = fsspec.filesystem("memory")
    for shard in (chain["tagged"] / "data").glob("*.parquet"):
        memory.pipe(f"/my-bucket/corpora/pmc-tagged/data/{shard.name}", shard.read_bytes())
    blocks = readme_python_blocks()
    assert len(blocks) == 4
    rows = list(corpus_rows(str(chain["tagged"]), columns=["split", "modality", "license_group", "concepts"]))
    train = [r for r in rows if r["split"] == "train"]

    hf: dict = {}
    exec(blocks[0], hf)
    assert len(hf["pairs"]) == len(train)
    assert len(hf["microscopy"]) == sum(r["modality"] == "microscopy" for r in train) > 0
    assert len(hf["bacteria"]) == sum(any(c["cui"] == "C0004611" for c in r["concepts"]) for r in train) > 0
    assert len(hf["commercial"]) == sum(r["license_group"] == "commercial" for r in train) > 0

    capsys.readouterr()
    exec(blocks[1].replace("gs://", "memory://"), {})
    streamed = capsys.readouterr().out.splitlines()
    assert len(streamed) == 3 and all(line.startswith("pmc/") for line in streamed)

    arrow: dict = {}
    exec(blocks[2], arrow)
    everywhere = [r for r in rows if r["license_group"] == "commercial" and r["modality"] == "microscopy"]
    assert arrow["microscopy"].num_rows == len(everywhere) > 0
    assert arrow["bacteria"].num_rows == sum(any(c["cui"] == "C0004611" for c in r["concepts"]) for r in rows)

    capsys.readouterr()
    exec(blocks[3], {})
    assert capsys.readouterr().out.count("\n") == 1


def test_every_pipeline_step_writes_the_report_and_croissant(chain):
    for corpus in chain.values():
        html = (corpus / "report.html").read_text()
        assert html.startswith("<!DOCTYPE html>") and f"<h1>{corpus.name}</h1>" in html
        assert (corpus / "croissant.json").is_file()
        assert not list(corpus.parent.glob(f".{corpus.name}.staging-*"))


def test_the_page_is_self_contained(chain):
    html = (chain["balanced"] / "report.html").read_text()
    assert "<script" not in html.lower()
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sources and all(s.startswith(("data:image/", "#")) for s in sources), sources
    assert "default-src 'none'" in html  # a stray external reference would fail to load, visibly


def test_stats_count_what_the_shards_hold(chain):
    rows = list(corpus_rows(str(chain["tagged"]), columns=["split", "source", "modality", "concepts"]))
    stats = compute_stats(str(chain["tagged"]))
    assert stats.pairs == len(rows) == read_manifest(str(chain["tagged"]))["outputs"]["pairs"]
    assert sum(stats.groups.values()) == len(rows)
    assert stats.modalities == Counter(r["modality"] or "unknown" for r in rows)
    carrying_ct = sum(any(c["cui"] == "C0040405" for c in r["concepts"]) for r in rows)
    assert stats.concepts["C0040405"] == carrying_ct > 0
    assert stats.concept_names["C0040405"] == "X-Ray Computed Tomography"
    assert sum(stats.caption_words.values()) == len(rows)
    # Samples: at most 4 per modality, every modality present gets some.
    assert set(stats.samples) == set(stats.modalities)
    assert all(1 <= len(refs) <= 4 for refs in stats.samples.values())


def test_balance_report_shows_before_and_after_and_removed_examples(chain):
    stats = compute_stats(str(chain["balanced"]))
    assert stats.removals == {
        ("balance", "over_concept_cap"): stats.manifest["stages"]["balance"]["removed"]["over_concept_cap"]
    }
    assert max(stats.concepts.values()) <= 3
    html = (chain["balanced"] / "report.html").read_text()
    for key in ("plot-concept-curve", "plot-concepts", "plot-rejects", "table-concepts", "table-lineage"):
        assert f'id="{key}"' in html
    assert "before balancing" in html and "Removed without a reject row" in html
    kept = {r["id"] for r in corpus_rows(str(chain["balanced"]), columns=["id"])}
    shown = re.findall(
        r'<div class="id">([^<]+)</div>', html.split("Removed without a reject row")[1].split("<section")[0]
    )
    assert shown and not kept & set(shown)  # the examples really are pairs balance removed
    lineage = [step["pipeline"] for step in stats.lineage()]
    assert lineage[-3:] == ["dedupe", "tag", "balance"] and {"ingest pmc", "ingest classification"} <= set(
        lineage
    )


def test_dedupe_report_shows_kept_and_removed_images_side_by_side(chain):
    rejects = [r for r in corpus_rows(str(chain["corpus"]), "rejects") if r["stage"] == "dedupe"]
    assert rejects
    stats = compute_stats(str(chain["corpus"]))
    example = stats.dedupe_examples[0]
    assert example["kept"] == json.loads(rejects[0]["detail"])["kept"] and example["level"]
    html = (chain["corpus"] / "report.html").read_text()
    pair = html.split('<div class="pair">')[1].split("</section>")[0]
    assert pair.count('<img class="thumb" src="data:image/jpeg;base64,') == 2  # both images found
    assert example["removed"] in pair and example["kept"] in pair


def test_reports_are_deterministic(chain):
    assert (
        render_report(str(chain["balanced"]), "balanced") == (chain["balanced"] / "report.html").read_text()
    )


def test_report_and_stats_commands(chain, tmp_path, capsys):
    (chain["pmc"] / "report.html").unlink()
    assert main(["report", str(chain["pmc"])]) == 0
    assert (chain["pmc"] / "report.html").is_file()
    assert main(["report", str(chain["pmc"]), "--out", str(tmp_path / "page.html")]) == 0
    assert (tmp_path / "page.html").read_text().startswith("<!DOCTYPE html>")
    capsys.readouterr()
    assert main(["stats", str(chain["tagged"])]) == 0
    printed = capsys.readouterr().out
    assert printed == format_text(corpus_tables(str(chain["tagged"])))
    stats = compute_stats(str(chain["tagged"]))
    assert re.search(rf"^pairs\s+{stats.pairs}$", printed, re.M)
    top_cui, top_n = stats.concepts.most_common(1)[0]
    assert re.search(rf"^{top_cui}\s.*\s{top_n}$", printed, re.M)


def test_report_of_a_folder_that_is_no_corpus_is_an_error(tmp_path, capsys):
    assert main(["stats", str(tmp_path / "missing")]) == 2
    assert "[path_missing]" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "[corpus_incomplete]" in capsys.readouterr().err


def test_croissant_validates_and_loads_records(chain):
    import mlcroissant as mlc

    corpus = chain["tagged"]
    dataset = mlc.Dataset(jsonld=str(corpus / "croissant.json"))
    assert not dataset.metadata.ctx.issues.errors, dataset.metadata.ctx.issues.report()
    document = json.loads((corpus / "croissant.json").read_text())
    assert document["conformsTo"] == "http://mlcommons.org/croissant/1.1"
    assert {"name": "CC BY", "url": "https://creativecommons.org/licenses/by/4.0/"}.items() <= document[
        "license"
    ][0].items()
    assert "National Library of Medicine" in document["creditText"] and "pmc_oa_subset" in document["citeAs"]
    files = [d for d in document["distribution"] if d["@type"] == "cr:FileObject"]
    assert files and all(re.fullmatch(r"[0-9a-f]{64}", f["sha256"]) for f in files)
    splits = next(r for r in document["recordSet"] if r["@id"] == "splits")["data"]
    assert {s["splits/name"] for s in splits} == set(read_manifest(str(corpus))["outputs"]["by_split"])

    records = list(dataset.records("pairs"))
    expected = {r["id"]: r for r in corpus_rows(str(corpus))}
    assert len(records) == len(expected)
    record = next(r for r in records if r["pairs/source"] == b"pmc" and r["pairs/concepts"])
    row = expected[record["pairs/id"].decode()]
    assert record["pairs/image"].size == (row["width"], row["height"])
    assert record["pairs/caption"].decode() == row["caption"]
    assert [c["pairs/concepts/cui"].decode() for c in record["pairs/concepts"]] == [
        c["cui"] for c in row["concepts"]
    ]
    assert record["pairs/split"].decode() == row["split"]
    rejects = list(
        itertools.islice(mlc.Dataset(jsonld=str(chain["corpus"] / "croissant.json")).records("rejects"), 5)
    )
    assert rejects and rejects[0]["rejects/stage"] == b"dedupe"


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,900",
]  # fmt: skip
PLOTS = (
    "plot-splits", "plot-modality", "plot-concepts", "plot-concept-curve",
    "plot-caption-length", "plot-image-size", "plot-rejects",
)  # fmt: skip


@pytest.fixture
def chromium(tmp_path):
    """Selenium driving Debian's Chromium through Debian's chromedriver, with a fresh profile and no
    network services. `make test` (what CI runs) installs Chromium first and requires it
    (MEDCORPUS_REQUIRE_BROWSER=1); a bare `pytest` on a machine without it skips."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.environ.get("MEDCORPUS_REQUIRE_BROWSER") or os.environ.get("CI"):
            pytest.fail(
                "Chromium is missing: `make test` installs it (apt-get install chromium chromium-driver)"
            )
        pytest.skip("needs Debian's chromium and chromium-driver (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.mark.parametrize("step", ["balanced", "corpus"])
def test_the_page_renders_in_headless_chromium(chain, chromium, step, tmp_path):
    chromium.get((chain[step] / "report.html").as_uri())
    errors = [e for e in chromium.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
    images = chromium.execute_script(
        "return [...document.images].map(i => [i.id || i.alt, i.complete, i.naturalWidth, i.naturalHeight]);"
    )
    assert len(images) > 10
    undecoded = [i for i in images if not (i[1] and i[2] > 0 and i[3] > 0)]
    assert not undecoded, undecoded
    ids = {i[0] for i in images}
    expected = set(PLOTS) - ({"plot-concepts", "plot-concept-curve"} if step == "corpus" else set())
    assert expected <= ids, expected - ids
    # Kept and removed images side by side (dedupe), the sample grid, the tables.
    cards = chromium.execute_script("return document.querySelectorAll('#samples .card img').length;")
    assert cards >= len(compute_stats(str(chain[step])).samples)
    if step == "corpus":
        assert chromium.execute_script("return document.querySelectorAll('#dedupe .pair img').length;") == 2
    height = chromium.execute_script("return document.documentElement.scrollHeight;")
    chromium.set_window_size(1280, height)
    screenshot = tmp_path / f"report-{step}.png"
    assert chromium.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 50_000
