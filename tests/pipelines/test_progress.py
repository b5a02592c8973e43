"""Progress lines give the total and the time left where the total is known."""

from __future__ import annotations

from pipelines.accounting import Progress


def test_progress_with_a_total_says_how_far_and_how_long():
    progress = Progress("captions tagged", total=1000)
    progress.done = 250
    line = progress.line(progress.started + 50)  # 5/s
    assert line == "captions tagged: 250 of 1,000 (25%), 5.0/s on this worker, about 2 min left"


def test_progress_without_a_total_says_the_count_and_rate():
    progress = Progress("samples")
    progress.done = 30
    assert progress.line(progress.started + 10) == "samples: 30 done, 3.0/s on this worker"


def test_progress_logs_at_most_every_interval(caplog):
    progress = Progress("rows", total=10, interval=3600)
    with caplog.at_level("INFO", logger="medcorpus"):
        for _ in range(10):
            progress.tick()
    assert progress.done == 10 and not caplog.records
