"""Caption generation: accepted captions per second and rejection rate per reason, per backend.

All backends caption the same demo card (CT liver lesion / normal, MRI brain tumour, fundus diabetic
retinopathy, colon histopathology), K captions per class, over several sampling seeds, through the
same post-filters. `template` runs anywhere; `vllm` (in-process engine) and `openai` (against a local
`vllm serve` this script starts and stops) run only where vLLM is installed (.venv-llm, or a GPU box):

    .venv/bin/python benchmarks/bench_captions.py                       # template only
    .venv-llm/bin/python benchmarks/bench_captions.py --rounds 3        # template, vllm, openai

Engine/server start-up is reported apart from generation time. No cache is used.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from connectors.dataset_card import load_card
from models.captions import CaptionGenerator, plan_requests
from models.llm import SamplingOptions
from models.llm.template import TemplateBackend

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "tests" / "connectors" / "data" / "cards" / "demo.yaml"
DEFAULT_MODEL = ROOT / ".cache" / "models" / "smollm2-135m-instruct"
# A small CPU engine; on a GPU drop these (vLLM sizes its KV cache from gpu_memory_utilization).
CPU_ENGINE = {"max_model_len": 1024, "enforce_eager": True}
CPU_KV_BYTES = 512 * 1024**2


def run_backend(name, backend, card, k, rounds, startup_s):
    generator = CaptionGenerator(backend, [card])
    requests = plan_requests(card, [[c] for c in card.class_names], k=k).requests
    accepted, reasons, candidates, errors = 0, Counter(), 0, Counter()
    start = time.perf_counter()
    for seed in range(rounds):
        if hasattr(backend, "sampling"):
            backend.sampling = replace(backend.sampling, seed=seed)
        for result in generator.run(requests):
            # The plain template caption is added to every LLM request; count only the backend's own.
            own = [m for m in result.caption_models if m == result.text_model]
            accepted += len(own) if name != "template" else len(result.captions)
            rejected = [r for r in result.rejected if r.index > 0 or name == "template"]
            reasons.update(r.reason for r in rejected)
            errors.update(r.detail[:200] for r in rejected if r.reason == "caption_llm_error")
            candidates += len(own) + len(rejected)
    seconds = time.perf_counter() - start
    generator.close()
    return {
        "backend": name,
        "startup_s": startup_s,
        "gen_s": seconds,
        "candidates": candidates,
        "accepted": accepted,
        "per_s": accepted / seconds if seconds else float("inf"),
        "reasons": reasons,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=10, help="captions per class (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="sampling seeds to run (default 3)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="HF model folder for vllm/openai")
    parser.add_argument("--backends", default="template,vllm,openai")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    card = load_card(str(CARD))
    wanted = args.backends.split(",")
    have_vllm = importlib.util.find_spec("vllm") is not None
    sampling = SamplingOptions(max_tokens=args.max_tokens)
    rows = []
    if "template" in wanted:
        rows.append(run_backend("template", TemplateBackend(), card, args.k, args.rounds, 0.0))
    if "vllm" in wanted and have_vllm:
        from models.llm.vllm_backend import VLLMBackend

        t = time.perf_counter()
        backend = VLLMBackend(
            args.model, sampling=sampling, **CPU_ENGINE, engine_kwargs={"kv_cache_memory_bytes": CPU_KV_BYTES}
        )
        backend.start()  # the engine otherwise starts on the first call: time it apart
        rows.append(run_backend("vllm", backend, card, args.k, args.rounds, time.perf_counter() - t))
    if "openai" in wanted and have_vllm:
        from models.llm.openai_backend import OpenAIBackend
        from models.llm.server import CPU_SERVER_ARGS, VLLMServer

        # CPU_SERVER_ARGS first: the flags after it override its defaults.
        server_args = [*CPU_SERVER_ARGS, "--max-model-len", "1024", "--enforce-eager"]
        server_args += ["--kv-cache-memory-bytes", str(CPU_KV_BYTES)]
        t = time.perf_counter()
        with VLLMServer(args.model, extra_args=server_args) as server:
            backend = OpenAIBackend(server.base_url, server.model_name, sampling=sampling, concurrency=16)
            rows.append(run_backend("openai", backend, card, args.k, args.rounds, time.perf_counter() - t))
    if not have_vllm and {"vllm", "openai"} & set(wanted):
        print("(vllm/openai rows skipped: vllm is not installed here; run with .venv-llm/bin/python)")

    print(
        f"card {card.name}: {len(card.classes)} classes, K={args.k}, {args.rounds} seeds, model {Path(args.model).name}"
    )
    print(
        f"{'backend':9} {'startup s':>9} {'gen s':>8} {'candidates':>10} {'accepted':>8} {'accepted/s':>10}  rejected by reason"
    )
    for row in rows:
        total = max(row["candidates"], 1)
        reasons = ", ".join(f"{r} {n / total:.0%}" for r, n in row["reasons"].most_common()) or "-"
        print(
            f"{row['backend']:9} {row['startup_s']:9.1f} {row['gen_s']:8.2f} {row['candidates']:10d} "
            f"{row['accepted']:8d} {row['per_s']:10.2f}  {reasons}"
        )
        for error, n in row["errors"].most_common(3):
            print(f"    {n} x {error}")


if __name__ == "__main__":
    main()
