"""Counting what enters and leaves each stage, rejects as a tagged output, and progress lines.

Counters are Beam metrics named `<stage>.in`, `<stage>.out`, `<stage>.rejected.<reason>` and
`<stage>.removed.<reason>`, so they add up across workers on every runner; the manifest reads them
after the run and checks that each stage reconciles.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

from schemas import RejectRecord

NAMESPACE = "medcorpus"
REJECTS = "rejects"

log = logging.getLogger("medcorpus")


def count(stage: str, what: str, n: int = 1) -> None:
    Metrics.counter(NAMESPACE, f"{stage}.{what}").inc(n)


def counted_reject(record: RejectRecord) -> RejectRecord:
    """Count a reject against its stage (for transforms whose main output is rejects)."""
    count(record.stage, f"rejected.{record.reason}")
    return record


def reject(record: RejectRecord) -> beam.pvalue.TaggedOutput:
    """Count a reject against its stage and route it to the rejects output."""
    return beam.pvalue.TaggedOutput(REJECTS, counted_reject(record))


class Progress:
    """Logs how many items a worker has done, at most every `interval` seconds: with the run's total and
    an estimate of the time left where the total is known before the run (rows of input shards). On
    several workers each reports its own count against the total, so the estimate is per worker."""

    def __init__(self, what: str, total: int | None = None, interval: float = 10.0):
        self.what = what
        self.total = total
        self.interval = interval
        self.done = 0
        self.started = time.monotonic()
        self.last = self.started

    def tick(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            log.info("%s", self.line(now))

    def line(self, now: float) -> str:
        rate = self.done / max(now - self.started, 1e-9)
        if not self.total:
            return f"{self.what}: {self.done:,} done, {rate:,.1f}/s on this worker"
        left = max(self.total - self.done, 0) / rate if rate > 0 else float("inf")
        eta = f"{left / 60:.0f} min" if left >= 90 else f"{left:.0f} s"
        return (
            f"{self.what}: {self.done:,} of {self.total:,} ({100 * self.done / self.total:.0f}%), "
            f"{rate:,.1f}/s on this worker, about {eta} left"
        )


def stage_counts(result: beam.runners.runner.PipelineResult) -> dict[str, dict]:
    """Counters of a finished run, per stage: {"in": n, "out": n, "rejected": {...}, "removed": {...}}."""
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    totals: dict[str, int] = defaultdict(int)
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] += int(value or 0)
    stages: dict[str, dict] = {}
    for name, value in sorted(totals.items()):
        if value == 0 and not name.endswith((".in", ".out")):
            continue
        stage, _, rest = name.partition(".")
        entry = stages.setdefault(stage, {"in": 0, "out": 0, "rejected": {}, "removed": {}})
        kind, _, reason = rest.partition(".")
        if stage == "written":
            entry[rest] = value
        elif kind in ("rejected", "removed"):
            entry[kind][reason] = value
        else:
            entry[rest] = value
    return stages


class CountAs(beam.DoFn):
    """Pass-through that counts each element as `<stage>.<what>`."""

    def __init__(self, stage: str, what: str):
        self.stage = stage
        self.what = what

    def process(self, element):
        count(self.stage, self.what)
        yield element
