"""Training throughput: medcorpus's trainer against open_clip's own (`open_clip_train.main`), same model and data.

One run on one GPU: writes a synthetic corpus of JPEG figures (coloured shapes with texture) as Parquet
shards for medcorpus and the same images as files plus a CSV (filepath, title) for open_clip_train; trains
one random initialisation of the same preset (open_clip model folder exported by medcorpus) with each
trainer for the same number of steps, batch size and precision; prints samples/s of both, their ratio, the
peak GPU memory of each and the share of step time each spent waiting for data. Both are timed the same way:
wall-clock over the steps after the first min(10, steps/5) (start-up, cuDNN autotuning), with the GPU
synchronised at the two ends only, and the time spent waiting for the next batch (run_open_clip_train.py
wraps open_clip's DataLoader to do so; its own logged batch times leave out the work its logging waits for).

    # on a GPU machine (see the report for the device command, which installs the wheels it needs)
    python benchmarks/bench_train_gpu.py --out-dir $OUT
    # anywhere, in a minute: tiny preset, a few CPU steps, both trainers end to end
    python benchmarks/bench_train_gpu.py --smoke

open_clip_train needs `webdataset` and `braceexpand` (and open_clip's `ftfy`) besides open-clip-torch.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
OPEN_CLIP_LOSS = re.compile(r"Contrastive_loss: ([\d.]+)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--smoke", action="store_true", help="tiny preset, a few steps on CPU: checks the plumbing only"
    )
    p.add_argument("--preset", default="biomedclip-vitb16")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=12, help="data-loader workers for each trainer")
    p.add_argument("--precision", default="amp_bf16", choices=["amp_bf16", "fp32"])
    p.add_argument("--image-size", default="512x384", help="stored JPEG size WxH (default 512x384)")
    p.add_argument("--log-every", type=int, default=5)
    p.add_argument("--work", help="working folder (default: a temporary one)")
    p.add_argument("--out-dir", help="also write bench_train_gpu.json here (e.g. $OUT on the device machine)")
    args = p.parse_args(argv)
    if args.smoke:
        args.preset, args.steps, args.batch_size, args.workers = "tiny", 6, 8, 2
        args.precision, args.image_size, args.log_every = "fp32", "96x72", 1
    return args


def measured_from(steps: int) -> int:
    """Steps the trainers' clocks skip (medcorpus's trainer uses this rule for its own summary)."""
    return max(1, min(10, steps // 5)) if steps > 2 else 0


def prepare(args: argparse.Namespace, work: Path) -> dict[str, Path]:
    from models.clip.export import export_open_clip
    from models.clip.factory import create_clip, prepare_model_dir
    from models.clip.presets import get_preset
    from models.clip.synthetic_corpus import ShapesSpec, write_shapes_corpus
    from models.clip.tokenizer import train_wordpiece

    width, height = (int(v) for v in args.image_size.split("x"))
    rows = (args.steps + args.workers + 1) * args.batch_size  # every loader worker fills whole batches
    started = time.perf_counter()
    corpus = write_shapes_corpus(
        work / "corpus",
        ShapesSpec(
            rows={"train": rows},
            shards_per_split=16,
            rows_per_group=128,
            size=(width, height),
            image_format="JPEG",
            distinct_images=min(rows, 512),
            alternatives_every=0,  # one caption per image, as the CSV holds
        ),
    )
    images = work / "images"
    images.mkdir(exist_ok=True)
    csv_path = work / "train.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filepath", "title"])
        n = 0
        for shard in sorted((corpus / "data").glob("*.parquet")):
            table = pq.read_table(shard, columns=["image", "caption"])
            for image, caption in zip(
                table.column("image").to_pylist(), table.column("caption").to_pylist(), strict=True
            ):
                if n == args.steps * args.batch_size:
                    break
                path = images / f"{n:07d}.jpg"
                path.write_bytes(image["bytes"])
                writer.writerow([str(path), caption])
                n += 1
    preset = get_preset(args.preset)
    tokenizer = None
    if preset.has_hf_text:
        captions = [
            f"a {c} {s}" for c in ("red", "green", "blue", "yellow") for s in ("circle", "square", "triangle")
        ]
        tokenizer = train_wordpiece(captions * 10, work / "tokenizer", preset.tokenizer["vocab_size"])
    import torch

    torch.manual_seed(0)
    clip = create_clip(prepare_model_dir(preset, work / "model", tokenizer_dir=tokenizer))
    export_open_clip(clip, work / "open_clip_model", name="bench-model")
    print(f"prepared {rows} rows, {n} CSV images in {time.perf_counter() - started:.1f}s", flush=True)
    return {"corpus": corpus, "csv": csv_path, "tokenizer": tokenizer, "model": work / "open_clip_model"}


def run_medcorpus(args, paths, work: Path, device: str) -> dict:
    out = work / "runs" / "medcorpus"
    command = [
        sys.executable,
        "-m",
        "pipelines.commands.train",
        "--corpus",
        str(paths["corpus"]),
        "--out",
        str(out),
        "--preset",
        args.preset,
        "--init",
        str(paths["model"]),
        "--max-steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--workers",
        str(args.workers),
        "--precision",
        args.precision,
        "--warmup-steps",
        "10",
        "--log-every",
        str(args.log_every),
        "--save-every",
        "0",
        "--keep-checkpoints",
        "1",
        "--no-eval",
        "--no-export",
        "--no-progress",
        "--device",
        device,
    ]
    if paths["tokenizer"] is not None:
        command += ["--tokenizer", str(paths["tokenizer"])]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"medcorpus train failed:\n{done.stderr[-6000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {
        "samples_per_s": summary["throughput"]["samples_per_s"],
        "data_wait_fraction": summary["throughput"]["data_wait_fraction"],
        "measured_steps": summary["throughput"]["measured_steps"],
        "peak_memory_gib": summary.get("max_memory_gib"),
        "final_loss": summary["final_loss"],
        "process_wall_s": time.perf_counter() - started,
    }


def run_open_clip(args, paths, work: Path, device: str) -> dict:
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "run_open_clip_train.py"),
        "--model",
        f"local-dir:{paths['model']}",
        "--train-data",
        str(paths["csv"]),
        "--dataset-type",
        "csv",
        "--csv-img-key",
        "filepath",
        "--csv-caption-key",
        "title",
        "--csv-separator",
        ",",
        "--batch-size",
        str(args.batch_size),
        "--workers",
        str(args.workers),
        "--precision",
        args.precision,
        "--epochs",
        "1",
        "--lr",
        "5e-4",
        "--wd",
        "0.2",
        "--beta1",
        "0.9",
        "--beta2",
        "0.98",
        "--eps",
        "1e-6",
        "--warmup",
        "10",
        "--seed",
        "0",
        "--local-loss",
        "--gather-with-grad",
        "--report-to",
        "",
        "--log-every-n-steps",
        str(args.log_every),
        "--logs",
        "none",
        "--name",
        "bench",
        "--device",
        device,
    ]
    started = time.perf_counter()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)])),
        "BENCH_SKIP_STEPS": str(measured_from(args.steps)),
    }
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"open_clip_train failed:\n{output[-6000:]}")
    timing = re.search(r"BENCH_TIMING (.+)", output)
    losses = OPEN_CLIP_LOSS.findall(output)
    if timing is None or not losses:
        raise SystemExit(f"found no timing or loss in open_clip_train's output:\n{output[-3000:]}")
    timing = json.loads(timing.group(1))
    return {
        "samples_per_s": timing["measured_steps"] * args.batch_size / timing["wall_s"],
        "data_wait_fraction": timing["data_wait_s"] / timing["wall_s"],
        "measured_steps": timing["measured_steps"],
        "peak_memory_gib": timing["peak_memory_gib"],
        "final_loss": float(losses[-1]),
        "process_wall_s": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    if device == "cpu" and not args.smoke:
        print(
            "no GPU: the figures below are CPU figures (use --smoke for a quick plumbing check)", flush=True
        )
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench_train_"))
    work.mkdir(parents=True, exist_ok=True)
    paths = prepare(args, work)
    results = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "preset": args.preset,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "workers": args.workers,
        "image_size": args.image_size,
        "medcorpus": run_medcorpus(args, paths, work, device),
        "open_clip_train": run_open_clip(args, paths, work, device),
    }
    results["ratio_medcorpus_to_open_clip"] = (
        results["medcorpus"]["samples_per_s"] / results["open_clip_train"]["samples_per_s"]
    )
    print(
        f"\n{results['preset']} on {results['device']}, batch {args.batch_size}, {args.precision}, "
        f"{args.workers} loader workers, {args.steps} steps"
    )
    print(f"{'trainer':<16}{'samples/s':>12}{'data wait':>12}{'peak GiB':>10}{'final loss':>12}")
    for name in ("medcorpus", "open_clip_train"):
        r = results[name]
        peak = f"{r['peak_memory_gib']:.1f}" if r["peak_memory_gib"] is not None else "-"
        print(
            f"{name:<16}{r['samples_per_s']:>12.1f}{r['data_wait_fraction']:>11.1%}{peak:>10}{r['final_loss']:>12.4f}"
        )
    print(f"ratio medcorpus / open_clip_train: {results['ratio_medcorpus_to_open_clip']:.3f}")
    text = json.dumps(results, indent=2)
    (work / "bench_train_gpu.json").write_text(text + "\n")
    if args.out_dir:
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.out_dir) / "bench_train_gpu.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
