"""End-to-end `medcorpus ingest pmc` throughput on Beam's local runner.

Builds a legacy-layout source of N articles in a temporary folder (the five sample packages copied under
new PMCIDs, listed in an oa_file_list.csv), runs the whole pipeline on it (stream the package, parse the
JATS, decode and re-encode every figure, write the shards and the manifest), and prints articles/s and
pairs/s. There is no peer for the whole pipeline; bench_jats.py compares the extraction step with
pubmed_parser.
    .venv/bin/python benchmarks/bench_ingest_pmc.py [--articles 500] [BEAM OPTIONS ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
import time
from pathlib import Path

from connectors.pmc_legacy import FILE_LIST_COLUMNS
from pipelines.cli import main as medcorpus

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "pmc-legacy"


def make_source(root: Path, articles: int) -> None:
    with open(SAMPLE / "oa_file_list.csv") as f:
        rows = list(csv.DictReader(f))
    with open(root / "oa_file_list.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FILE_LIST_COLUMNS)
        for i in range(articles):
            row = rows[i % len(rows)]
            pmcid = f"PMC{90_000_000 + i}"
            package = f"oa_package/{i % 100:02d}/{pmcid}.tar.gz"
            (root / package).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLE / row["File"], root / package)
            writer.writerow(
                {**row, "File": package, "Accession ID": pmcid, "PMID": ""}[c] for c in FILE_LIST_COLUMNS
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=500)
    args, beam_args = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        source, out = Path(tmp) / "source", Path(tmp) / "corpus"
        source.mkdir()
        make_source(source, args.articles)
        started = time.perf_counter()
        code = medcorpus(["ingest", "pmc", "--source", str(source), "--out", str(out), *beam_args])
        seconds = time.perf_counter() - started
        manifest = json.loads((out / "manifest.json").read_text())
    pairs = manifest["outputs"]["pairs"]
    print(
        f"\n{args.articles} articles, {pairs} pairs in {seconds:.1f} s (exit {code}, options {beam_args or 'default'})"
    )
    print(f"  {args.articles / seconds:.1f} articles/s, {pairs / seconds:.1f} pairs/s end to end")


if __name__ == "__main__":
    main()
