"""Training checkpoints: written atomically, found again by `--resume latest`.

A checkpoint is one `torch.save` file `checkpoints/step-NNNNNNNN.pt` holding the model weights under
`state_dict` (so `open_clip.load_checkpoint` reads it as it is), the optimiser, scheduler and grad-scaler
states, every rank's RNG state and data position, and the run's settings. It is written to a temporary
name, flushed and renamed; `checkpoints/latest` names the newest complete one.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from schemas.errors import ReasonError

log = logging.getLogger(__name__)

LATEST = "latest"
AUTO = "auto"
FORMAT = "medcorpus-clip-checkpoint"
FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d+)\.pt$")


class CheckpointError(ReasonError, ValueError):
    """A checkpoint that cannot be written, found or restored (`checkpoint_*`)."""


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.pt"


def save_checkpoint(directory: Path, step: int, payload: dict[str, Any], keep: int = 3) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / checkpoint_name(step)
    tmp = directory / f".{path.name}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "step": step, **payload}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    pointer = directory / f".{LATEST}.tmp-{os.getpid()}"
    pointer.write_text(path.name + "\n")
    os.replace(pointer, directory / LATEST)
    if keep > 0:
        for old in _sorted_checkpoints(directory)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def latest_checkpoint(directory: Path) -> Path | None:
    pointer = directory / LATEST
    if pointer.is_file():
        named = directory / pointer.read_text().strip()
        if named.is_file():
            return named
    found = _sorted_checkpoints(directory)
    return found[-1] if found else None


def resolve_resume(resume: str | None, directory: Path) -> Path | None:
    """`latest` -> the newest checkpoint in `directory` (an error when there is none); `auto` -> the same,
    or None (a fresh start) when there is none; a path -> that file."""
    if resume is None:
        return None
    if resume in (LATEST, AUTO):
        found = latest_checkpoint(directory)
        if found is None and resume == LATEST:
            raise CheckpointError(
                "checkpoint_missing",
                f"--resume latest, but {directory} holds no checkpoint: drop --resume to start, or use "
                "--resume auto to start when there is none",
            )
        if found is None:
            log.info("--resume auto: no checkpoint in %s, starting from scratch", directory)
        return found
    path = Path(resume)
    if not path.is_file():
        raise CheckpointError("checkpoint_missing", f"{resume} does not exist")
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which, not a pickle traceback
        raise CheckpointError("checkpoint_unreadable", f"{path}: {type(e).__name__}: {e}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError("checkpoint_foreign", f"{path} is not a medcorpus training checkpoint")
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError("checkpoint_too_new", f"{path} was written by a newer medcorpus")
    return data


def _sorted_checkpoints(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]
