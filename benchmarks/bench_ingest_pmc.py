"""Whole `medcorpus ingest pmc` per figure, against a bare Pillow loop on the same image files.

The source: legacy `oa_package/.../PMC<id>.tar.gz` packages with an `oa_file_list.csv`, whose XML is
real published JATS of several publishers (the five bundled articles, sample_data/jats: PLoS ONE 2007 and
2025, BMC, EHP, eLife; plus tests/connectors/data/jats_realworld/*/ when present: eLife, Hindawi,
Pensoft, PLoS Biology, SciELO, Springer/BMC, Wolters Kluwer), cycled over new PMCIDs. Every figure
graphic is a distinct generated JPEG (benchmarks/realistic_figures.py: multi-panel composites of real
images and charts, about 1.5 MP median); nothing repeats.

Ours: the whole pipeline (stream each package, parse the JATS, read each figure, check, decode, hash,
resize or keep, encode, write Parquet shards and the manifest), wall clock from the command's start.
Peer: a bare Pillow loop over exactly the figure files the pipeline converts, in memory: open, convert to
RGB, resize to a longest side of 1024 (LANCZOS, reducing_gap 3.0: the same filter as ours), save JPEG q90.
No checks, no hash, no XML, no tar, no Parquet.

One core: this process is pinned to one CPU and runs the peer, then the pipeline (in-process runner),
then the peer again; the ratio divides by the mean of the two peer timings, so load from other work on
the machine shows as the gap between them. Two workers: the peer in two forked processes, the pipeline
with `--direct_num_workers 2 --direct_running_mode multi_processing`, both on all CPUs. A small run (2
articles) measures the pipeline's fixed start-up cost, so the marginal per-figure cost is printed too.

    .venv/bin/python benchmarks/bench_ingest_pmc.py [--articles 100] [--repeats 3] [--workers 2]
        [--long-sides 900:2500] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import gzip
import io
import json
import logging
import multiprocessing
import os
import pstats
import statistics
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from PIL import Image
from realistic_figures import DEFAULT_LONG_SIDES, figure_jpeg

from connectors.images import ImageOptions, draft_jpeg, normalize_image_bytes, pixel_sha256
from connectors.jats import parse_jats
from connectors.jats_href import resolve_href, split_image_extension
from connectors.pmc_legacy import FILE_LIST_COLUMNS
from pipelines.cli import main as medcorpus

ROOT = Path(__file__).resolve().parents[1]
LEGACY = ROOT / "sample_data" / "pmc-legacy"
REALWORLD = ROOT / "tests" / "connectors" / "data" / "jats_realworld"
MAX_SIDE, QUALITY = 1024, 90


@dataclass
class Template:
    """A real article: its XML, the members its package keeps as they are, and its figure media names."""

    name: str
    xml_name: str
    xml: bytes
    keep: dict[str, bytes]  # inline formulas and other non-figure media
    figures: list[str]  # media names to fill with generated figures


def templates() -> list[Template]:
    out = []
    with open(LEGACY / "oa_file_list.csv") as f:
        for row in csv.DictReader(f):
            with tarfile.open(LEGACY / row["File"]) as tar:
                members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar if m.isfile()}
            xml_name = next(n for n in members if n.endswith((".xml", ".nxml")))
            names = [n for n in members if n != xml_name]
            hrefs = {resolve_href(f.href, names) for f in parse_jats(members[xml_name]).figures}
            figures = sorted(split_image_extension(n)[0] + ".jpg" for n in hrefs if n)
            keep = {n: d for n, d in members.items() if n not in hrefs and n != xml_name}
            out.append(Template(row["Accession ID"], xml_name, members[xml_name], keep, figures))
    for path in sorted(REALWORLD.glob("*/*.xml")) if REALWORLD.is_dir() else []:
        xml = path.read_bytes()
        try:
            figures = sorted(
                {
                    split_image_extension(f.href.rsplit("/", 1)[-1])[0] + ".jpg"
                    for f in parse_jats(xml).figures
                }
            )
        except Exception:  # an article another helper collected to test a rejection
            continue
        if figures:
            out.append(Template(f"{path.parent.name}/{path.name}", path.name, xml, {}, figures))
    return out


def make_source(root: Path, articles: int, long_sides: tuple[int, int], first_figure: int = 0) -> list[bytes]:
    """Write `articles` packages cycling over the templates; returns the generated figure files."""
    pool = templates()
    figures: list[bytes] = []
    with open(root / "oa_file_list.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FILE_LIST_COLUMNS)
        for i in range(articles):
            template = pool[i % len(pool)]
            pmcid = f"PMC{90_000_000 + i}"
            members = {template.xml_name: template.xml, **template.keep}
            for name in template.figures:
                members[name] = figure_jpeg(first_figure + len(figures), long_sides)
                figures.append(members[name])
            relative = f"oa_package/{i % 100:02d}/{pmcid}.tar.gz"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(_targz(pmcid, members))
            row = {
                "File": relative,
                "Article Citation": template.name,
                "Accession ID": pmcid,
                "Last Updated (YYYY-MM-DD HH:MM:SS)": "2026-01-01 00:00:00",
                "PMID": "",
                "License": "CC BY",
            }
            writer.writerow(row[c] for c in FILE_LIST_COLUMNS)
    return figures


def extraction_cpu_seconds(articles: int, passes: int = 3) -> float:
    """CPU seconds parse_jats takes over the run's articles' XML (the templates as make_source cycles
    them), best of ``passes``: the JATS extraction's part of the whole ingest."""
    pool = templates()
    xmls = [pool[i % len(pool)].xml for i in range(articles)]
    return _best_seconds(parse_jats, xmls, passes, time.process_time)


def _targz(folder: str, members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def bare(data: bytes) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    longest = max(img.size)
    if longest > MAX_SIDE:
        scale = MAX_SIDE / longest
        img = img.resize(
            (round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS, reducing_gap=3.0
        )
    out = io.BytesIO()
    img.save(out, "JPEG", quality=QUALITY)
    return out.getvalue()


_FILES: list[bytes] = []  # the peer's input, inherited by forked workers


def _bare_share(share: tuple[int, int]) -> int:
    start, step = share
    for data in _FILES[start::step]:
        bare(data)
    return len(_FILES[start::step])


def _cpu() -> float:
    """CPU seconds of this process and its reaped children: unlike wall time, not inflated by other
    people's work on the same cores (they share this machine's two)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def peer_seconds(files: list[bytes], workers: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the bare loop over `files` on `workers` processes."""
    _FILES[:] = files
    started, cpu = time.perf_counter(), _cpu()
    if workers == 1:
        _bare_share((0, 1))
    else:
        pool = multiprocessing.get_context("fork").Pool(workers)
        pool.map(_bare_share, [(k, workers) for k in range(workers)])
        pool.close()
        pool.join()  # reaped, so their CPU time is counted
    return time.perf_counter() - started, _cpu() - cpu


def ours_seconds(
    source: Path, out: Path, beam_args: list[str], profile: Path | None = None
) -> tuple[float, float, dict]:
    """(wall, CPU, manifest) of one `ingest pmc` run."""
    started, cpu = time.perf_counter(), _cpu()
    with cProfile.Profile() if profile else contextlib.nullcontext() as prof:
        code = medcorpus(["ingest", "pmc", "--source", str(source), "--out", str(out), *beam_args])
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    if prof is not None:
        prof.dump_stats(profile)
    manifest = json.loads((out / "manifest.json").read_text())
    if code != 0:
        raise SystemExit(f"ingest pmc exited {code}")
    return seconds, cpu, manifest


def _best_seconds(fn, items: list, repeats: int = 2, clock=time.perf_counter) -> float:
    """The fastest of ``repeats`` passes of ``fn`` over ``items``, by ``clock``."""
    best = float("inf")
    for _ in range(repeats):
        started = clock()
        for item in items:
            fn(item)
        best = min(best, clock() - started)
    return best


def _ms_per(fn, items: list, repeats: int = 2) -> float:
    return _best_seconds(fn, items, repeats) / max(len(items), 1) * 1e3


def _interleaved(first, second, items: list, repeats: int = 2) -> tuple[float, float]:
    """ms per item of two functions run alternately on each item: load from other work on the machine
    falls on both alike, so their ratio holds even when the absolute figures drift."""
    spent = [0.0, 0.0]
    for _ in range(repeats):
        for item in items:
            for k, fn in enumerate((first, second)):
                started = time.perf_counter()
                fn(item)
                spent[k] += time.perf_counter() - started
    return spent[0] / (repeats * len(items)) * 1e3, spent[1] / (repeats * len(items)) * 1e3


def _beam_ms_per_element(payload: bytes, reshuffle: bool) -> float:
    """Marginal cost of one element through a fused Map, or through a Reshuffle, on the local runner."""

    def seconds(n: int) -> float:
        started = time.perf_counter()
        with beam.Pipeline(runner=FnApiRunner()) as p:
            items = (
                p | beam.Create(range(n)) | "Spread" >> beam.Reshuffle() | beam.Map(lambda i: (i, payload))
            )
            if reshuffle:
                items = items | "Shuffle images" >> beam.Reshuffle()
            _ = items | beam.Map(lambda kv: len(kv[1])) | beam.CombineGlobally(sum)
        return time.perf_counter() - started

    small, large = 50, 550
    return (
        (min(seconds(large) for _ in range(2)) - min(seconds(small) for _ in range(2)))
        / (large - small)
        * 1e3
    )


def breakdown(files: list[bytes]) -> None:
    """Where one figure's time goes, step by step, on this process's core (ms per figure)."""
    options = ImageOptions()
    opened = [Image.open(io.BytesIO(d)) for d in files]
    big = [d for d, img in zip(files, opened, strict=True) if max(img.size) >= 2 * MAX_SIDE]

    def full(data: bytes) -> Image.Image:
        img = Image.open(io.BytesIO(data))
        img.load()
        return img

    def drafted(data: bytes) -> Image.Image:
        img = Image.open(io.BytesIO(data))
        scale = MAX_SIDE / max(img.size)
        draft_jpeg(img, (round(img.width * scale), round(img.height * scale)))
        img.load()
        return img

    decoded = [full(d) for d in files]

    def resize(img: Image.Image) -> None:
        scale = MAX_SIDE / max(img.size)
        if scale < 1:
            img.resize(
                (round(img.width * scale), round(img.height * scale)),
                Image.Resampling.LANCZOS,
                reducing_gap=3.0,
            )

    resized = [img.resize((min(img.width, 1024), min(img.height, 700))) for img in decoded]
    payload = files[0]
    peer_ms, ours_ms = _interleaved(bare, lambda d: normalize_image_bytes(d, options, True), files)
    rows = [
        ("bare Pillow loop (the peer), interleaved file by file with:", peer_ms),
        (f"ours: normalize_image_bytes, keeping fitting files ({ours_ms / peer_ms:.2f}x)", ours_ms),
        ("  decode in full (open + load)", _ms_per(full, files)),
        (f"  decode in full, the {len(big)} >= {2 * MAX_SIDE} px", _ms_per(full, big)),
        (f"  decode with DCT scaling, the same {len(big)}", _ms_per(drafted, big)),
        (
            "  numpy round trip (asarray + fromarray; removed)",
            _ms_per(lambda i: Image.fromarray(np.asarray(i)), decoded),
        ),
        ("  pixel hash (tobytes + SHA-256; kept)", _ms_per(pixel_sha256, decoded)),
        ("  resize LANCZOS to 1024, full decodes", _ms_per(resize, decoded)),
        (
            "  encode JPEG q90 (at about 1024 px)",
            _ms_per(lambda i: i.save(io.BytesIO(), "JPEG", quality=QUALITY), resized),
        ),
        ("Beam: one element through a fused Map", _beam_ms_per_element(b"x", reshuffle=False)),
        (
            f"Beam: one {len(payload) // 1000} kB image through a Reshuffle (removed)",
            _beam_ms_per_element(payload, True),
        ),
    ]
    print("per-figure costs on one core (ms; Beam rows are marginal per element on the local runner):")
    for label, ms in rows:
        print(f"  {label:62} {ms:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="the multi-worker run (0: skip it)")
    parser.add_argument("--long-sides", default=f"{DEFAULT_LONG_SIDES[0]}:{DEFAULT_LONG_SIDES[1]}")
    parser.add_argument("--breakdown", action="store_true", help="print where one figure's time goes")
    parser.add_argument("--profile", action="store_true", help="cProfile one 1-worker run, print the top")
    args = parser.parse_args()
    low, high = (int(v) for v in args.long_sides.split(":"))
    all_cpus = os.sched_getaffinity(0)
    one_cpu = {max(all_cpus)}
    multi = ["--direct_num_workers", str(args.workers), "--direct_running_mode", "multi_processing"]
    logging.disable(logging.WARNING)  # Beam's per-run worker warnings; the figures below are the output

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        source, small = tmp_path / "source", tmp_path / "small"
        source.mkdir()
        small.mkdir()
        started = time.perf_counter()
        files = make_source(source, args.articles, (low, high))
        make_source(small, 2, (low, high), first_figure=len(files))
        sizes = [Image.open(io.BytesIO(d)).size for d in files]
        megapixels = sorted(w * h / 1e6 for w, h in sizes)
        print(
            f"{args.articles} articles ({len(templates())} real XML templates), {len(files)} figures, "
            f"median {statistics.median(megapixels):.2f} MP (min {megapixels[0]:.2f}, max {megapixels[-1]:.2f}), "
            f"{sum(map(len, files)) / len(files) / 1e3:.0f} kB mean; {sum(max(s) <= MAX_SIDE for s in sizes)} "
            f"fit in {MAX_SIDE}, {sum(max(s) >= 2 * MAX_SIDE for s in sizes)} are >= {2 * MAX_SIDE}; "
            f"built in {time.perf_counter() - started:.0f} s"
        )
        runs = 0

        def run(beam_args: list[str], src: Path = source, profile: Path | None = None):
            nonlocal runs
            runs += 1
            return ours_seconds(src, tmp_path / f"out{runs}", beam_args, profile)

        os.sched_setaffinity(0, one_cpu)
        if args.breakdown:
            breakdown(files)
        run([], small)  # warm imports and caches once
        if args.profile:
            stats_path = tmp_path / "profile.pstats"
            run([], profile=stats_path)
            stats = pstats.Stats(str(stats_path))
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(40)
        print(
            f"{'run':>3} {'workers':>7} {'peer wall s':>12} {'ours wall s':>11} {'peer fig/s':>10} {'ours fig/s':>10} "
            f"{'wall ratio':>10} {'marginal':>8} {'peer cpu s':>10} {'ours cpu s':>10} {'cpu ratio':>9}"
        )
        results: dict[int, list[dict]] = {1: [], args.workers: []}
        stored: Counter = Counter()
        for repeat in range(args.repeats):
            for workers in (1, args.workers) if args.workers > 1 else (1,):
                os.sched_setaffinity(0, one_cpu if workers == 1 else all_cpus)
                beam_args = [] if workers == 1 else multi
                fixed, _, small_manifest = run(beam_args, small)
                before, before_cpu = peer_seconds(files, workers)
                seconds, cpu, manifest = run(beam_args)
                after, after_cpu = peer_seconds(files, workers)
                figures = manifest["stages"]["figures"]["in"]
                assert manifest["outputs"]["pairs"] == figures == len(files), manifest["stages"]["figures"]
                small_figures = small_manifest["stages"]["figures"]["in"]
                peer, peer_cpu = (before + after) / 2, (before_cpu + after_cpu) / 2
                r = {
                    "ours": figures / seconds,
                    "peer": figures / peer,
                    "ratio": seconds / peer,
                    "marginal": (seconds - fixed) / (figures - small_figures) * figures / peer,
                    "cpu_ratio": cpu / peer_cpu,
                    "cpu": cpu,
                }
                results[workers].append(r)
                print(
                    f"{repeat + 1:>3} {workers:>7} {before:5.1f}/{after:<6.1f} {seconds:11.1f} {r['peer']:10.1f} "
                    f"{r['ours']:10.1f} {r['ratio']:9.2f}x {r['marginal']:7.2f}x {peer_cpu:10.1f} {cpu:10.1f} "
                    f"{r['cpu_ratio']:8.2f}x"
                )
                if repeat == 0 and workers == 1:
                    stored = Counter(
                        v
                        for path in (tmp_path / f"out{runs}" / "data").glob("*.parquet")
                        for v in pq.read_table(path, columns=["image_stored"]).column(0).to_pylist()
                    )
        os.sched_setaffinity(0, all_cpus)

    def spread(rows: list[dict], key: str) -> str:
        values = [r[key] for r in rows]
        return f"median {statistics.median(values):.2f}x (min {min(values):.2f}, max {max(values):.2f})"

    print(f"how images were stored: {dict(stored)}")
    one = results[1]
    print(
        f"1 core: ours {statistics.median(r['ours'] for r in one):.1f} figures/s "
        f"(runs {', '.join(format(r['ours'], '.1f') for r in one)}), peer {statistics.median(r['peer'] for r in one):.1f}; "
        f"cost ratio wall {spread(one, 'ratio')}, marginal {spread(one, 'marginal')}, CPU {spread(one, 'cpu_ratio')}"
    )
    extraction = extraction_cpu_seconds(args.articles)
    pipeline_cpu = statistics.median(r["cpu"] for r in one)
    print(
        f"JATS extraction (parse_jats over the same {args.articles} articles' XML, one core, CPU): "
        f"{extraction * 1e3 / args.articles:.2f} ms per article, {extraction:.2f} s in all: "
        f"{extraction / pipeline_cpu:.1%} of the 1-core pipeline's {pipeline_cpu:.1f} CPU s"
    )
    if args.workers > 1:
        many = results[args.workers]
        ours_eff = statistics.median(r["ours"] for r in many) / (
            args.workers * statistics.median(r["ours"] for r in one)
        )
        peer_eff = statistics.median(r["peer"] for r in many) / (
            args.workers * statistics.median(r["peer"] for r in one)
        )
        print(
            f"{args.workers} workers: ours {statistics.median(r['ours'] for r in many):.1f} figures/s, peer "
            f"{statistics.median(r['peer'] for r in many):.1f}; cost ratio wall {spread(many, 'ratio')}, marginal "
            f"{spread(many, 'marginal')}; scaling efficiency ours {ours_eff:.0%}, peer {peer_eff:.0%} (the peer's "
            "shows what this machine's second core gives while others use it)"
        )


if __name__ == "__main__":
    main()
