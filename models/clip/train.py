"""The bundled trainer: contrastive pretraining of a preset on a corpus, single process or under torchrun.

    torchrun --nproc_per_node=8 -m pipelines.cli train --corpus corpus/ --preset biomedclip-vitb16 --out runs/x

Per optimiser step each rank reads `accum_steps` micro-batches from its share of the corpus. With
accumulation the step keeps the contrastive loss of the whole accumulated batch, as open_clip does: the
features of every micro-batch are first computed without gradients, then each micro-batch is recomputed
with gradients against the cached features of the others.

A run folder holds `model/` (the open_clip model folder), `checkpoints/`, `tensorboard/`, `metrics.jsonl`
(loss and learning rate per step), `summary.json`, and at the end `eval.json` and `export/`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from connectors.splits import SplitRatios
from models.clip.checkpoint import load_checkpoint, resolve_resume, save_checkpoint
from models.clip.corpus_index import CorpusIndex, CorpusReadError, RowFilter, iter_captions
from models.clip.distributed import (
    DistInfo,
    barrier,
    broadcast_object,
    contrastive_loss,
    gather_objects,
    init_distributed,
    shutdown,
)
from models.clip.export import export_open_clip, unwrap
from models.clip.factory import ClipModel, create_clip, prepare_model_dir
from models.clip.presets import get_preset
from models.clip.stream import EpochPosition, PairStream, StreamOptions, uint8_transform
from models.clip.tokenizer import train_wordpiece
from schemas.errors import ReasonError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "amp_bf16", "amp_fp16", "fp32")


class TrainError(ReasonError, ValueError):
    """A training run that cannot start or continue (`run_exists`, `batch_too_large`, ...)."""


@dataclass
class TrainConfig:
    corpus: str | list[str]  # several corpora are read as one
    out: str
    preset: str = "tiny"
    batch_size: int | None = None  # per process; None: 32, or fewer when the training split is smaller
    accum_steps: int = 1
    epochs: int | None = None  # neither epochs nor max_steps: one epoch
    max_steps: int | None = None
    # BiomedCLIP's optimiser settings
    lr: float = 5e-4
    weight_decay: float = 0.2
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    warmup_steps: int | None = None  # None: 5% of the steps, at most 2000
    logit_scale_max: float = 100.0
    precision: str = "auto"  # auto: amp_bf16 on CUDA, fp32 on CPU
    grad_checkpointing: bool = False
    compile: bool = False
    workers: int | None = None  # loader workers per process; None: up to 4, as many as can fill batches
    shuffle_buffer: int = 2048
    seed: int = 0
    train_split: str = "train"
    eval_split: str = "test"
    license_groups: tuple[str, ...] | None = None
    modalities: tuple[str, ...] | None = None
    concepts: tuple[str, ...] | None = None
    tokenizer: str | None = None  # a local HF tokenizer folder; None: trained on the corpus captions
    text_model: str | None = None  # a local HF model folder to initialise the text tower from
    init: str | None = None  # an open_clip checkpoint or exported model folder to start from
    resume: str | None = None  # "latest" or a checkpoint file
    save_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    stop_at_step: int | None = None  # end this invocation after this step (checkpointed); resume continues
    eval_at_end: bool = True
    eval_batch_size: int = 128
    zeroshot: str | None = None  # a classification dataset for zero-shot evaluation at the end
    zeroshot_templates: str | None = None
    # The --splits the zero-shot dataset was ingested with (its test samples are evaluated on), or None
    # for a dataset that is not part of the training corpus (all its samples are).
    zeroshot_splits: str | None = "98/1/1"
    export_at_end: bool = True
    device: str | None = None
    progress: bool = True

    def row_filter(self, split: str) -> RowFilter:
        return RowFilter((split,), self.license_groups, self.modalities, self.concepts)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or continue) training; returns the summary also written to `<out>/summary.json`."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # loader workers fork after the tokenizer loads
    if cfg.precision not in PRECISIONS:
        raise TrainError("precision_unknown", f"{cfg.precision}; choose one of {PRECISIONS}")
    info = init_distributed(cfg.device)
    if info.device.type == "cuda":
        # TF32 for the fp32 matmuls autocast leaves (as open_clip's trainer does); cuDNN picks its fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    try:
        return _Run(cfg, info).main()
    finally:
        shutdown(info)


class _Run:
    def __init__(self, cfg: TrainConfig, info: DistInfo) -> None:
        self.cfg = cfg
        self.info = info
        self.out = Path(cfg.out)
        self.ckpt_dir = self.out / "checkpoints"
        self.device = info.device
        precision = cfg.precision
        if precision == "auto":
            precision = "amp_bf16" if self.device.type == "cuda" else "fp32"
        self.precision = precision
        self.errors: Counter[str] = Counter()

    # -- set-up ------------------------------------------------------------------------------------------
    def main(self) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        index = CorpusIndex.build(cfg.corpus, cfg.row_filter(cfg.train_split))  # before --out exists
        cfg = self.cfg = self._fit_loader(index)
        if info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        resume_from = self._on_main(self._find_resume)
        if index.num_rows == 0:
            raise CorpusReadError(
                "corpus_empty", f"no {cfg.train_split} rows in {cfg.corpus} pass the filters"
            )
        if resume_from is None:
            self._on_main(lambda: self._prepare_model_dir(index))
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        clip = create_clip(
            self.out / "model",
            text_model=None if resume_from else cfg.text_model,
            init=None if resume_from else cfg.init,
        )
        if cfg.grad_checkpointing:
            clip.model.set_grad_checkpointing(True)
        clip.model.to(self.device)
        worker_transform, self.normalize = uint8_transform(clip.train_transform)
        stream = PairStream(
            index,
            worker_transform,
            clip.tokenizer,
            StreamOptions(batch_size=cfg.batch_size, seed=cfg.seed, shuffle_buffer=cfg.shuffle_buffer),
            rank=info.rank,
            world_size=info.world_size,
            slots_per_rank=max(1, cfg.workers),
            image_size=clip.image_size,
        )
        batches_per_epoch = stream.steps_per_epoch()
        steps_per_epoch = batches_per_epoch // cfg.accum_steps
        if steps_per_epoch == 0:
            global_batch = cfg.batch_size * cfg.accum_steps * info.world_size
            raise TrainError(
                "batch_too_large",
                f"{index.num_rows} training rows cannot fill one step of {global_batch} samples "
                f"({max(1, cfg.workers)} loader workers per process each fill whole batches)",
            )
        total_steps = cfg.max_steps or (cfg.epochs or 1) * steps_per_epoch
        warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(2000, max(1, total_steps // 20))
        optimizer = _optimizer(clip.model, cfg, self.device)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _cosine_with_warmup(warmup, total_steps))
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "amp_fp16")
        step = 0
        position = EpochPosition(positions=[0] * stream.slots_per_rank)
        if resume_from is not None:
            step, position = self._restore(resume_from, clip, optimizer, scheduler, scaler, stream)
        torch.manual_seed(cfg.seed + 1000 * info.rank)
        if resume_from is not None:
            self._restore_rng()
        model: Any = clip.model
        if info.distributed:
            model = torch.nn.parallel.DistributedDataParallel(
                model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                static_graph=cfg.grad_checkpointing,
            )
        if cfg.compile:
            model = torch.compile(model)
        self.clip, self.model, self.stream = clip, model, stream
        self.optimizer, self.scheduler, self.scaler = optimizer, scheduler, scaler
        self.loss_fn = contrastive_loss(info)
        self.total_steps, self.steps_per_epoch = total_steps, steps_per_epoch
        self.index = index
        return self._loop(step, position, resume_from)

    def _on_main(self, work):
        """Run `work` on rank 0 only and hand its result, or its error, to every rank (so none waits forever)."""
        outcome = None
        if self.info.is_main:
            try:
                outcome = ("ok", work())
            except ValueError as e:
                if not self.info.distributed:
                    raise
                reason = getattr(e, "reason", "error")
                outcome = ("error", reason, str(e).removeprefix(f"{reason}: "))
        outcome = broadcast_object(outcome, self.info)
        if outcome[0] == "error":
            raise TrainError(outcome[1], outcome[2])
        return outcome[1]

    def _fit_loader(self, index: CorpusIndex) -> TrainConfig:
        """The batch size and loader workers a run will use, checked against the training rows before any
        model is built: each loader worker fills whole batches, so a small split needs fewer of both."""
        cfg, world = self.cfg, self.info.world_size
        per_rank = index.num_rows // world
        batch = cfg.batch_size or max(1, min(DEFAULT_BATCH, per_rank // cfg.accum_steps))
        workers = (
            cfg.workers
            if cfg.workers is not None
            else max(1, min(DEFAULT_WORKERS, per_rank // (batch * cfg.accum_steps)))
        )
        needed = batch * cfg.accum_steps * max(1, workers) * world
        if index.num_rows < needed:
            raise TrainError(
                "batch_too_large",
                f"{index.num_rows} training rows cannot fill one step: {world} process(es) x {max(1, workers)} loader "
                f"worker(s) x batch {batch} x {cfg.accum_steps} accumulation step(s) need {needed}; lower "
                "--batch-size or --workers",
            )
        if (batch, workers) != (cfg.batch_size, cfg.workers):
            log.info(
                "batch size %d, %d loader worker(s) per process for %d training rows",
                batch,
                workers,
                index.num_rows,
            )
        return dataclasses.replace(cfg, batch_size=batch, workers=workers)

    def _find_resume(self) -> Path | None:
        found = resolve_resume(self.cfg.resume, self.ckpt_dir)
        if found is None and any(self.ckpt_dir.glob("step-*.pt")):
            raise TrainError(
                "run_exists", f"{self.out} already has checkpoints: pass --resume latest or a new --out"
            )
        return found

    def _prepare_model_dir(self, index: CorpusIndex) -> None:
        cfg = self.cfg
        preset = get_preset(cfg.preset)
        model_dir = self.out / "model"
        tokenizer = cfg.tokenizer
        if preset.has_hf_text and tokenizer is None and cfg.text_model is None:
            tokenizer = str(self._corpus_tokenizer(index, preset, model_dir))
        prepare_model_dir(preset, model_dir, tokenizer_dir=tokenizer, text_model=cfg.text_model)

    def _corpus_tokenizer(self, index: CorpusIndex, preset, model_dir: Path) -> Path:
        """The WordPiece tokenizer trained on the corpus captions, trained once and kept beside the corpus
        (`<corpus>/tokenizers/wordpiece-<key>`): HF's trainer breaks ties in hash order, so two trainings
        differ, and only reuse makes the same --seed give the same run."""
        cfg = self.cfg
        vocab, lowercase = preset.tokenizer["vocab_size"], preset.tokenizer.get("lowercase", True)
        corpora = [cfg.corpus] if isinstance(cfg.corpus, str) else list(cfg.corpus)
        key = hashlib.sha256(
            json.dumps(
                [
                    vocab,
                    lowercase,
                    _plain(asdict(cfg.row_filter(cfg.train_split))),
                    [_manifest_digest(c) for c in corpora],
                ]
            ).encode()
        ).hexdigest()[:12]
        kept = Path(corpora[0]) / "tokenizers" / f"wordpiece-{key}"
        if (kept / "tokenizer.json").is_file():
            log.info("reusing the corpus's WordPiece tokenizer %s", kept)
            return kept
        log.info("no tokenizer given: training a %d-token WordPiece tokenizer on the corpus captions", vocab)
        trained = train_wordpiece(iter_captions(index), model_dir, vocab, lowercase)
        try:
            staging = kept.with_name(f".{kept.name}.tmp-{os.getpid()}")
            shutil.copytree(trained, staging, dirs_exist_ok=True)
            staging.rename(kept)
        except OSError as exc:  # a read-only or remote corpus: the run keeps its own copy only
            log.warning(
                "could not keep the tokenizer beside the corpus (%s): another run would train anew", exc
            )
            return trained
        return kept

    def _restore(self, path: Path, clip: ClipModel, optimizer, scheduler, scaler, stream: PairStream):
        checkpoint = load_checkpoint(path)
        saved, now = checkpoint.get("config") or {}, _plain(asdict(self.cfg))
        changed = [
            f"{k} {saved[k]!r} -> {now[k]!r}" for k in RESUME_FIXED if k in saved and saved[k] != now[k]
        ]
        if changed:
            raise TrainError(
                "resume_config_mismatch",
                f"{path} cannot continue with other settings ({'; '.join(changed)}): resume with the "
                "checkpoint's settings, or start a new --out",
            )
        if checkpoint["world_size"] != self.info.world_size:
            raise TrainError(
                "resume_layout_mismatch",
                f"{path} was written by {checkpoint['world_size']} processes; this run has {self.info.world_size}",
            )
        clip.model.load_state_dict(checkpoint["state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        position = EpochPosition.from_dict(checkpoint["data"][self.info.rank])
        stream.start_epoch(position)  # checks the worker layout
        self._resume_rng = checkpoint["rng"][self.info.rank]
        if self.info.is_main:
            self.errors.update(checkpoint.get("data_errors", {}))
            _truncate_metrics(self.out / "metrics.jsonl", checkpoint["step"])
            log.info(
                "resumed from %s at step %d (epoch %d, batch %d)",
                path,
                checkpoint["step"],
                position.epoch,
                position.batches,
            )
        return int(checkpoint["step"]), position

    def _restore_rng(self) -> None:
        state = self._resume_rng
        torch.set_rng_state(state["cpu"])
        if self.device.type == "cuda" and state.get("cuda") is not None:
            torch.cuda.set_rng_state(state["cuda"], self.device)

    # -- the loop -------------------------------------------------------------------------------------
    def _loop(self, step: int, position: EpochPosition, resumed: Path | None) -> dict[str, Any]:
        from torch.utils.data import DataLoader

        cfg, info = self.cfg, self.info
        writer = _tensorboard(self.out) if info.is_main else None
        progress = _progress(cfg.progress and info.is_main, self.total_steps, step)
        stop_at = min(self.total_steps, cfg.stop_at_step or self.total_steps)
        first_step = step
        measure_from = step + max(1, min(10, (stop_at - step) // 5)) if stop_at - step > 2 else step
        clock: dict[str, float] = {}
        pending: list[tuple[int, torch.Tensor, float]] = []
        last_saved = step
        interval_start, interval_wait, interval_steps = time.perf_counter(), 0.0, 0
        global_batch = cfg.batch_size * cfg.accum_steps * info.world_size
        loss_value = float("nan")
        while step < stop_at:
            self.stream.start_epoch(position)
            loader = DataLoader(
                self.stream,
                batch_size=None,
                num_workers=cfg.workers,
                pin_memory=self.device.type == "cuda",
                prefetch_factor=4 if cfg.workers else None,
                generator=torch.Generator().manual_seed(cfg.seed + position.epoch),  # spares the global RNG
            )
            batches = iter(loader)
            epoch_batches = self.steps_per_epoch * cfg.accum_steps
            while position.batches < epoch_batches and step < stop_at:
                if step == measure_from:
                    _sync(self.device)
                    clock = {"start": time.perf_counter(), "wait": 0.0, "step": step}
                waited = time.perf_counter()
                micro = [next(batches) for _ in range(cfg.accum_steps)]
                waited = time.perf_counter() - waited
                interval_wait += waited
                if clock:
                    clock["wait"] += waited
                lr = self.optimizer.param_groups[0]["lr"]
                loss = self._step(micro)
                for batch in micro:
                    position.positions[batch["slot"]] = batch["end"]
                    position.batches += 1
                    self.errors.update(batch["errors"])
                step += 1
                interval_steps += 1
                pending.append((step, loss, lr))
                epoch_done = position.batches >= epoch_batches
                if epoch_done:
                    position = EpochPosition(position.epoch + 1, 0, [0] * self.stream.slots_per_rank)
                if step % cfg.log_every == 0 or step == stop_at:
                    loss_value = self._log(pending, writer)
                    elapsed = time.perf_counter() - interval_start
                    rate = interval_steps * global_batch / max(elapsed, 1e-9)
                    if writer is not None:
                        writer.add_scalar("train/samples_per_s", rate, step)
                        writer.add_scalar(
                            "train/data_wait_fraction", interval_wait / max(elapsed, 1e-9), step
                        )
                    if progress is not None:
                        progress.set_postfix(loss=f"{loss_value:.4f}", samples_per_s=f"{rate:.1f}")
                    pending = []
                    interval_start, interval_wait, interval_steps = time.perf_counter(), 0.0, 0
                if progress is not None:
                    progress.update(1)
                if cfg.save_every and step % cfg.save_every == 0:
                    self._save(step, position)
                    last_saved = step
                if epoch_done:
                    break
            del batches, loader
        _sync(self.device)
        finished = time.perf_counter()
        if last_saved != step:
            self._save(step, position)
        if progress is not None:
            progress.close()
        if writer is not None:
            writer.close()
        summary = self._summary(step, first_step, position, loss_value, clock, finished, resumed)
        barrier(info)  # the last collective: only rank 0 evaluates and exports, the others may leave
        if step >= self.total_steps:
            summary.update(self._finish())
        if info.is_main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _step(self, micro: list[dict[str, Any]]) -> torch.Tensor:
        cfg = self.cfg
        device = self.device
        images = [self.normalize(b["image"].to(device, non_blocking=True)) for b in micro]
        texts = [b["text"].to(device, non_blocking=True) for b in micro]
        self.optimizer.zero_grad(set_to_none=True)
        if len(micro) == 1:
            with self._autocast():
                out = self.model(images[0], texts[0])
                loss = self.loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
            self.scaler.scale(loss).backward()
        else:
            with torch.no_grad(), self._autocast():
                cached = [self.model(i, t) for i, t in zip(images, texts, strict=True)]
            cached_images = [c["image_features"] for c in cached]
            cached_texts = [c["text_features"] for c in cached]
            for j in range(len(micro)):
                sync = (
                    self.model.no_sync()
                    if j < len(micro) - 1
                    and isinstance(self.model, torch.nn.parallel.DistributedDataParallel)
                    else contextlib.nullcontext()
                )
                with sync:
                    with self._autocast():
                        out = self.model(images[j], texts[j])
                        all_images = torch.cat(
                            cached_images[:j] + [out["image_features"]] + cached_images[j + 1 :]
                        )
                        all_texts = torch.cat(
                            cached_texts[:j] + [out["text_features"]] + cached_texts[j + 1 :]
                        )
                        loss = self.loss_fn(all_images, all_texts, out["logit_scale"])
                    self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        with torch.no_grad():
            unwrap(self.model).logit_scale.clamp_(0, math.log(cfg.logit_scale_max))
        return loss.detach()

    def _autocast(self):
        if self.precision == "amp_bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.precision == "amp_fp16":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def _log(self, pending: list[tuple[int, torch.Tensor, float]], writer: Any) -> float:
        losses = torch.stack([loss.float() for _, loss, _ in pending])
        if self.info.distributed:
            torch.distributed.all_reduce(losses)
            losses /= self.info.world_size
        values = losses.cpu().tolist()
        if self.info.is_main:
            scale = float(unwrap(self.model).logit_scale.detach().exp())
            with open(self.out / "metrics.jsonl", "a") as f:
                for (step, _, lr), value in zip(pending, values, strict=True):
                    f.write(json.dumps({"step": step, "loss": value, "lr": lr}) + "\n")
                    if writer is not None:
                        writer.add_scalar("train/loss", value, step)
                        writer.add_scalar("train/lr", lr, step)
            if writer is not None:
                writer.add_scalar("train/logit_scale", scale, pending[-1][0])
        return values[-1]

    def _save(self, step: int, position: EpochPosition) -> None:
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        rngs = gather_objects(rng, self.info)
        positions = gather_objects(position.to_dict(), self.info)
        errors = gather_objects(dict(self.errors), self.info)
        if not self.info.is_main:
            return
        merged: Counter[str] = Counter()
        for e in errors:
            merged.update(e)
        payload = {
            "state_dict": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rngs,
            "data": positions,
            "data_errors": dict(merged),
            "world_size": self.info.world_size,
            "workers": self.stream.slots_per_rank,
            "model_dir": "../model",
            "config": _plain(asdict(self.cfg)),
        }
        path = save_checkpoint(self.ckpt_dir, step, payload, keep=self.cfg.keep_checkpoints)
        log.info("checkpoint %s", path)

    # -- the end ------------------------------------------------------------------------------------------
    def _summary(self, step, first_step, position, loss_value, clock, finished, resumed) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        errors = gather_objects(dict(self.errors), info)
        merged: Counter[str] = Counter()
        for e in errors:
            merged.update(e)
        summary: dict[str, Any] = {
            "preset": cfg.preset,
            "step": step,
            "total_steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "epoch": position.epoch,
            "stopped_early": step < self.total_steps,
            "resumed_from": str(resumed) if resumed else None,
            "world_size": info.world_size,
            "global_batch": cfg.batch_size * cfg.accum_steps * info.world_size,
            "precision": self.precision,
            "final_loss": loss_value,
            "train_rows": self.index.num_rows,
            "index": self.index.stats,
            "data_errors": dict(merged),
        }
        if clock:
            measured_steps = step - clock["step"]
            wall = finished - clock["start"]
            summary["throughput"] = {
                "measured_steps": measured_steps,
                "samples_per_s": measured_steps * summary["global_batch"] / max(wall, 1e-9),
                "data_wait_fraction": clock["wait"] / max(wall, 1e-9),
                "wall_s": wall,
            }
        if self.device.type == "cuda":
            summary["max_memory_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        summary["steps_this_run"] = step - first_step
        return summary

    def _finish(self) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        extra: dict[str, Any] = {}
        if info.is_main:
            clip = self.clip
            if cfg.export_at_end:
                extra["export"] = str(export_open_clip(clip, self.out / "export"))
            if cfg.eval_at_end:
                from models.clip.evaluate import EvalSettings, evaluate, read_templates

                settings = EvalSettings(
                    batch_size=cfg.eval_batch_size,
                    workers=min(cfg.workers, 4),
                    device=str(self.device),
                    bf16=self.precision == "amp_bf16",
                )
                results = evaluate(
                    clip,
                    settings,
                    corpus=cfg.corpus,
                    split=cfg.eval_split,
                    row_filter=cfg.row_filter(cfg.eval_split),
                    zeroshot=cfg.zeroshot,
                    templates=read_templates(cfg.zeroshot_templates),
                    zeroshot_ratios=SplitRatios.parse(cfg.zeroshot_splits) if cfg.zeroshot_splits else None,
                )
                (self.out / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
                extra["eval"] = results
        return extra


def _manifest_digest(corpus: str) -> str:
    path = Path(corpus) / "manifest.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else corpus


DEFAULT_BATCH, DEFAULT_WORKERS = 32, 4

# What a resumed run must share with the run it continues (epochs, max steps and evaluation may change).
RESUME_FIXED = (
    "preset",
    "batch_size",
    "accum_steps",
    "seed",
    "train_split",
    "license_groups",
    "modalities",
    "concepts",
)


def _optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    # open_clip's split: no weight decay on gains, biases, norms and the logit scale
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exclude = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if exclude else decay).append(p)
    return torch.optim.AdamW(
        [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": cfg.weight_decay}],
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.eps,
        fused=device.type == "cuda",
    )


def _cosine_with_warmup(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard is not installed: no TensorBoard scalars")
        return None
    return SummaryWriter(str(out / "tensorboard"))


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop lines logged after the checkpoint a run resumes from, so the curve continues without repeats."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(f"{line}\n" for line in kept))


def _plain(value: Any) -> Any:
    """Config values as the lists/dicts/scalars `torch.load(weights_only=True)` accepts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
