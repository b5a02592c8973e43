"""Dedupe quality on the planted-duplicate corpus (real images and captions; `curation.dedupe.planted`).

Each medcorpus level runs alone and combined, through the real Beam pipeline (`medcorpus dedupe`); in
the same run, on the same images, the peers: imagededup's PHash at its default Hamming threshold (10),
the usual single-machine tool, and exact hashing of the image files alone (what BIOMEDICA does).

Prints, per method: pairwise precision and recall (two pairs are "found" when they end in one group),
the share of planted copies grouped with their original (all variants, and per variant), the false
merges (look-alikes: adjacent MRI slices, two stains of one slide) and the wall time.

    .venv/bin/python benchmarks/bench_dedupe_quality.py [--image-embedder /models/BiomedCLIP]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

from connectors.corpus import corpus_rows
from curation.dedupe.planted import VARIANTS, PlantedPair, Scores, planted_pairs, score, write_planted_corpus
from models.embedders import bundled_minilm
from pipelines.cli import main


def medcorpus(corpus: Path, work: Path, name: str, flags: list[str]) -> tuple[dict[str, str], float]:
    out = work / name
    started = time.perf_counter()
    code = main(["dedupe", "--in", str(corpus), "--out", str(out), *flags])
    elapsed = time.perf_counter() - started
    assert code == 0, f"{name}: exit {code}"
    kept = {}
    for row in corpus_rows(str(out), "rejects"):
        kept[row["id"]] = json.loads(row["detail"])["kept"]
    return kept, elapsed


def components(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """member -> representative (the smallest id) of each connected component."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: root(x) for x in parent if root(x) != x}


def imagededup_phash(planted: list[PlantedPair], work: Path) -> tuple[dict[str, str], float]:
    from imagededup.methods import PHash

    folder = work / "imagededup"
    folder.mkdir()
    names = {}
    for p in planted:
        name = p.record.image_path
        (folder / name).write_bytes(p.record.image_bytes)
        names[name] = p.record.id
    started = time.perf_counter()
    hasher = PHash(verbose=False)
    duplicates = hasher.find_duplicates(image_dir=folder, max_distance_threshold=10)
    elapsed = time.perf_counter() - started
    edges = [(names[a], names[b]) for a, found in duplicates.items() for b in found]
    return components(edges), elapsed


def exact_file_hash(planted: list[PlantedPair]) -> tuple[dict[str, str], float]:
    started = time.perf_counter()
    first: dict[str, str] = {}
    edges = []
    for p in planted:
        digest = hashlib.sha256(p.record.image_bytes).hexdigest()
        if digest in first:
            edges.append((first[digest], p.record.id))
        else:
            first[digest] = p.record.id
    return components(edges), time.perf_counter() - started


def line(
    name: str, result: Scores, planted: list[PlantedPair], kept_of: dict[str, str], seconds: float
) -> str:
    copies = [p for p in planted if p.variant in VARIANTS]
    group_of = {p.record.id: kept_of.get(p.record.id, p.record.id) for p in planted}
    found = sum(group_of[p.record.id] == group_of[f"planted/{p.group}/base"] for p in copies)
    variants = " ".join(f"{v}={result.recall_by_variant[v]:.2f}" for v in VARIANTS)
    return (
        f"{name:<34} P {result.precision:.3f}  R {result.recall:.3f}  copies {found}/{len(copies)}  "
        f"false merges {len(result.false_merges)}  {seconds:6.2f} s\n{'':<34} {variants}"
    )


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-embedder", help="a local open_clip folder, for the image-embedding level")
    args = parser.parse_args()
    planted = planted_pairs()
    minilm = bundled_minilm()
    print(
        f"planted corpus: {len(planted)} pairs, {sum(p.variant in VARIANTS for p in planted)} planted copies of "
        f"{sum(p.variant == 'base' for p in planted)} real images, look-alikes and one caption copy"
    )
    runs = [
        ("medcorpus exact (pixels + caption)", ["--no-phash"]),
        ("medcorpus pHash r=4", ["--no-exact-image", "--no-exact-caption"]),
        ("medcorpus pHash r=6", ["--no-exact-image", "--no-exact-caption", "--phash-radius", "6"]),
        (
            "medcorpus caption MiniLM >=0.97",
            ["--no-exact-image", "--no-exact-caption", "--no-phash", "--caption-embedder", minilm],
        ),
        ("medcorpus default (exact + pHash)", []),
        ("medcorpus default + MiniLM", ["--caption-embedder", minilm]),
    ]
    if args.image_embedder:
        runs.insert(
            4,
            (
                "medcorpus image embedding >=0.95",
                [
                    "--no-exact-image",
                    "--no-exact-caption",
                    "--no-phash",
                    "--image-embedder",
                    args.image_embedder,
                ],
            ),
        )
        runs.append(
            ("medcorpus all levels", ["--caption-embedder", minilm, "--image-embedder", args.image_embedder])
        )
    else:
        print(
            "image-embedding level: not measured (pass --image-embedder with a local BiomedCLIP/CLIP folder)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = work / "planted"
        write_planted_corpus(str(corpus), planted)
        for name, flags in runs:
            kept, seconds = medcorpus(corpus, work, name.replace(" ", "_").replace("/", "_"), flags)
            print(line(name, score(planted, kept), planted, kept, seconds))
        kept, seconds = imagededup_phash(planted, work)
        print(line("peer: imagededup PHash (t=10)", score(planted, kept), planted, kept, seconds))
        kept, seconds = exact_file_hash(planted)
        print(line("peer: exact file hash (BIOMEDICA)", score(planted, kept), planted, kept, seconds))


if __name__ == "__main__":
    main_bench()
