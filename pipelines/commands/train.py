"""`medcorpus train`: pretrain a CLIP model on a corpus with the bundled trainer.

Multi-GPU: `torchrun --nproc_per_node=8 -m pipelines.cli train --corpus ... --out ...`
(or `-m pipelines.commands.train --corpus ...`, this command alone).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="pretrain a BiomedCLIP-like model on a corpus (one process, or many under torchrun)",
        description="Contrastive pretraining of a model preset on a corpus's train split, streaming its Parquet "
        "shards. Checkpoints go to OUT/checkpoints; --resume latest continues a stopped run exactly. At the end "
        "the model is evaluated (OUT/eval.json) and exported for open_clip (OUT/export). "
        "Multi-GPU: torchrun --nproc_per_node=8 -m pipelines.cli train ...",
    )
    p.add_argument(
        "--corpus",
        required=True,
        action="append",
        help="corpus folder (local path or fsspec URL); repeat it to train on several corpora as one",
    )
    p.add_argument("--out", required=True, help="run folder, e.g. runs/<name>")
    p.add_argument(
        "--preset",
        default="biomedclip-vitb16",
        help="model preset name or preset JSON file (default biomedclip-vitb16; tiny for demos)",
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="passes over the train split (default 1)")
    length.add_argument("--max-steps", type=int, help="optimiser steps to train for")
    p.add_argument(
        "--batch-size",
        type=int,
        help="samples per process per micro-batch (default 32, fewer when the training split is smaller)",
    )
    p.add_argument("--accum-steps", type=int, default=1, help="micro-batches per optimiser step (default 1)")
    opt = p.add_argument_group("optimiser (BiomedCLIP's defaults)")
    opt.add_argument("--lr", type=float, default=5e-4)
    opt.add_argument("--weight-decay", type=float, default=0.2)
    opt.add_argument("--beta1", type=float, default=0.9)
    opt.add_argument("--beta2", type=float, default=0.98)
    opt.add_argument("--eps", type=float, default=1e-6)
    opt.add_argument("--warmup-steps", type=int, help="default: 5%% of the steps, at most 2000")
    perf = p.add_argument_group("performance")
    perf.add_argument(
        "--precision",
        choices=["auto", "amp_bf16", "amp_fp16", "fp32"],
        default="auto",
        help="auto: bf16 autocast on GPUs, fp32 on CPU",
    )
    perf.add_argument("--grad-checkpointing", action="store_true")
    perf.add_argument("--compile", action="store_true", help="torch.compile the model")
    perf.add_argument(
        "--workers",
        type=int,
        help="data-loader workers per process (default 4, fewer when they cannot fill batches)",
    )
    perf.add_argument(
        "--shuffle-buffer", type=int, default=2048, help="rows shuffled together (default 2048)"
    )
    perf.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    data = p.add_argument_group("data")
    data.add_argument("--train-split", default="train")
    data.add_argument(
        "--eval-split", default="test", help="held-out split for retrieval at the end (default test)"
    )
    data.add_argument("--license-group", action="append", help="keep only this license group (repeatable)")
    data.add_argument("--modality", action="append", help="keep only this modality (repeatable)")
    data.add_argument(
        "--concept", action="append", help="keep only rows tagged with this UMLS CUI (repeatable)"
    )
    data.add_argument("--seed", type=int, default=0)
    init = p.add_argument_group("initialisation (local paths only)")
    init.add_argument("--tokenizer", help="HF tokenizer folder (default: train one on the corpus captions)")
    init.add_argument("--text-model", help="HF model folder to initialise the text tower from")
    init.add_argument("--init", help="open_clip checkpoint or exported model folder to start from")
    ck = p.add_argument_group("checkpoints and logging")
    ck.add_argument(
        "--resume",
        help="'latest' (the newest checkpoint in --out; an error when there is none), 'auto' (the same, or a "
        "fresh start when there is none: for jobs that restart themselves) or a checkpoint file",
    )
    ck.add_argument("--save-every", type=int, default=1000, help="checkpoint every N steps (default 1000)")
    ck.add_argument("--keep-checkpoints", type=int, default=3)
    ck.add_argument("--log-every", type=int, default=10)
    ck.add_argument("--stop-at-step", type=int, help="stop (with a checkpoint) after this step; resume later")
    ck.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev = p.add_argument_group("end of training")
    ev.add_argument("--no-eval", action="store_true")
    ev.add_argument("--no-export", action="store_true")
    ev.add_argument("--eval-batch-size", type=int, default=128)
    ev.add_argument(
        "--zeroshot", help="classification dataset (folder, manifest, HF dataset) for zero-shot eval"
    )
    ev.add_argument("--zeroshot-templates", help="file of prompt templates, one per line with {}")
    ev.add_argument(
        "--zeroshot-splits",
        default="98/1/1",
        help="the --splits the zero-shot dataset was ingested with into the training corpus: where the dataset "
        "names no splits, only its test samples (assigned as ingest assigns them) are evaluated on; `all` for a "
        "dataset that is not part of the training corpus (default 98/1/1)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from models.clip.train import TrainConfig, train

    def tup(values):
        return tuple(values) if values else None

    cfg = TrainConfig(
        corpus=args.corpus,
        out=args.out,
        preset=args.preset,
        batch_size=args.batch_size,
        accum_steps=args.accum_steps,
        epochs=args.epochs,
        max_steps=args.max_steps,
        lr=args.lr,
        weight_decay=args.weight_decay,
        beta1=args.beta1,
        beta2=args.beta2,
        eps=args.eps,
        warmup_steps=args.warmup_steps,
        precision=args.precision,
        grad_checkpointing=args.grad_checkpointing,
        compile=args.compile,
        workers=args.workers,
        shuffle_buffer=args.shuffle_buffer,
        seed=args.seed,
        train_split=args.train_split,
        eval_split=args.eval_split,
        license_groups=tup(args.license_group),
        modalities=tup(args.modality),
        concepts=tup(args.concept),
        tokenizer=args.tokenizer,
        text_model=args.text_model,
        init=args.init,
        resume=args.resume,
        save_every=args.save_every,
        keep_checkpoints=args.keep_checkpoints,
        log_every=args.log_every,
        stop_at_step=args.stop_at_step,
        eval_at_end=not args.no_eval,
        eval_batch_size=args.eval_batch_size,
        zeroshot=args.zeroshot,
        zeroshot_templates=args.zeroshot_templates,
        zeroshot_splits=None if args.zeroshot_splits == "all" else args.zeroshot_splits,
        export_at_end=not args.no_export,
        device=args.device,
        progress=not args.no_progress,
    )
    summary = train(cfg)  # errors a user can fix reach the CLI's one error path (pipelines.cli)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m pipelines.commands.train ...`: the train command alone (what torchrun launches), through
    the same command line, logging and error path as `medcorpus train`."""
    from pipelines.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
