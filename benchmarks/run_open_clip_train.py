"""Run open_clip's own trainer (`open_clip_train.main`) with the given arguments and time it like medcorpus.

open_clip's logged batch times leave out the GPU work that its log-time `.item()` waits for, so they flatter
it. Here its training DataLoader is wrapped to take wall-clock time over the steps after the first
BENCH_SKIP_STEPS (synchronising the GPU only at the two ends) and the time spent waiting for batches,
which is how medcorpus's trainer measures itself. Prints one `BENCH_TIMING {json}` line at the end.
"""

import json
import os
import sys
import time

import open_clip_train.main as open_clip_main
import torch

SKIP = int(os.environ.get("BENCH_SKIP_STEPS", "10"))
timing = {"measured_steps": 0, "wall_s": 0.0, "data_wait_s": 0.0}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class TimedLoader:
    def __init__(self, loader) -> None:
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self):
        batches = iter(self._loader)
        fetched, start = 0, None
        while True:
            if fetched == SKIP:
                _sync()
                start = time.perf_counter()
            waited = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                break
            if start is not None:
                timing["data_wait_s"] += time.perf_counter() - waited
            fetched += 1
            yield batch
        if start is not None:  # the loop asks for the next batch after the last step is queued
            _sync()
            timing["wall_s"] = time.perf_counter() - start
            timing["measured_steps"] = fetched - SKIP


_get_data = open_clip_main.get_data


def timed_get_data(*args, **kwargs):
    data = _get_data(*args, **kwargs)
    data["train"].dataloader = TimedLoader(data["train"].dataloader)
    return data


open_clip_main.get_data = timed_get_data

if __name__ == "__main__":
    open_clip_main.main(sys.argv[1:])
    timing["peak_memory_gib"] = (
        torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    )
    print("BENCH_TIMING " + json.dumps(timing), flush=True)
