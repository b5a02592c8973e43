"""The record of a build's steps: `<out>/build-state.json`, one entry per step.

An entry is written as `started` before the step runs (so a later build knows the step's output folder
is its own, even when the run failed) and as `done` once the command succeeded, with the fingerprint it
ran with (its command line, its inputs' digests, the medcorpus version) and the digest of its output. The
file is replaced whole after every step, so a build that fails keeps the record of the steps before.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from connectors import fs

STATE_FILE = "build-state.json"
FORMAT = 1


class BuildState:
    def __init__(self, out: str) -> None:
        self.url = fs.join(out, STATE_FILE)
        self.steps: dict[str, dict[str, Any]] = {}
        if fs.exists(self.url):
            filesystem, path = fs.filesystem(self.url)
            with filesystem.open(path) as f:
                saved = json.load(f)
            if saved.get("format") == FORMAT:  # another format: every step reruns
                self.steps = saved["steps"]

    def entry(self, name: str) -> dict[str, Any] | None:
        return self.steps.get(name)

    def started(self, name: str, fingerprint: dict[str, Any]) -> None:
        self.steps[name] = {"status": "started", "fingerprint": fingerprint, "started": _now()}
        self._save()

    def done(self, name: str, fingerprint: dict[str, Any], output: str | None, seconds: float) -> None:
        self.steps[name] = {
            "status": "done",
            "fingerprint": fingerprint,
            "output": output,
            "finished": _now(),
            "seconds": round(seconds, 1),
        }
        self._save()

    def _save(self) -> None:
        filesystem, path = fs.filesystem(self.url)
        filesystem.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with filesystem.open(temporary, "w") as f:
            json.dump({"format": FORMAT, "steps": self.steps}, f, indent=1, sort_keys=True)
        filesystem.mv(temporary, path)  # a reader sees the old record or the new one, never half of one


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
