"""The report's plots: matplotlib on its Agg backend (no display), each rendered to a PNG data URI.

Every function takes the numbers of `connectors.report.stats.CorpusStats` and returns a `Plot`, or None
when there is nothing to draw (an untagged corpus has no concept plots).
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # before pyplot: the report is drawn on servers and CI machines with no display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator, ScalarFormatter  # noqa: E402

from connectors.report.stats import CorpusStats  # noqa: E402

WIDTH, HEIGHT, DPI = 5.6, 3.2, 100  # two plots side by side in the page's 1180 px
TOP_CONCEPTS = 20
COLOURS = ["#3b6ea8", "#e08a2c", "#5a9e4b", "#c8503c", "#8064a2", "#7f7f7f"]


@dataclass(frozen=True)
class Plot:
    key: str  # the element id in the page (tests look for it)
    title: str
    data_uri: str


def _render(key: str, title: str, figure: plt.Figure) -> Plot:
    figure.tight_layout()
    buffer = io.BytesIO()
    # No "Software" entry: the same corpus gives byte-identical images, whatever matplotlib wrote them.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(figure)
    return Plot(key, title, "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())


def _bars(key: str, title: str, counts: list[tuple[str, int]], xlabel: str) -> Plot:
    figure, axes = plt.subplots(figsize=(WIDTH, 0.26 * len(counts) + 1.1))
    labels = [label for label, _ in counts][::-1]
    values = [value for _, value in counts][::-1]
    bars = axes.barh(labels, values, color=COLOURS[0])
    axes.bar_label(bars, padding=2, fontsize=8)
    axes.set_xlabel(xlabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.margins(x=0.12)
    axes.tick_params(axis="y", labelsize=8)
    return _render(key, title, figure)


def modality_plot(stats: CorpusStats) -> Plot | None:
    if not stats.modalities:
        return None
    return _bars("plot-modality", "Modality", stats.modalities.most_common(), "pairs")


def split_plot(stats: CorpusStats) -> Plot | None:
    """Pairs per split, stacked by licence group."""
    if not stats.groups:
        return None
    splits = sorted({s for s, _, _ in stats.groups}, key=_split_order)
    groups = sorted({g for _, _, g in stats.groups})
    figure, axes = plt.subplots(figsize=(WIDTH, max(2.2, 0.5 * len(splits) + 1.2)))
    left = [0] * len(splits)
    for colour, group in zip(COLOURS * 4, groups, strict=False):
        values = [
            sum(n for (s, _, g), n in stats.groups.items() if s == split and g == group) for split in splits
        ]
        axes.barh(splits, values, left=left, label=group, color=colour)
        left = [a + b for a, b in zip(left, values, strict=True)]
    axes.invert_yaxis()
    axes.set_xlabel("pairs")
    axes.legend(title="licence group", fontsize=8, title_fontsize=8, loc="lower right")
    return _render("plot-splits", "Pairs per split and licence group", figure)


def _split_order(split: str) -> tuple[int, str]:
    order = {"train": 0, "validation": 1, "test": 2}
    return (order.get(split, 3), split)


def top_concepts_plot(stats: CorpusStats) -> Plot | None:
    if not stats.concepts:
        return None
    top = [(f"{stats.concept_names.get(c, c)} ({c})", n) for c, n in stats.concepts.most_common(TOP_CONCEPTS)]
    return _bars("plot-concepts", f"Top {len(top)} concepts", top, "pairs carrying the concept")


def concept_curve_plot(stats: CorpusStats) -> Plot | None:
    """Pairs per concept against the concept's rank (log-log on a large corpus); before and after
    balancing, with the cap, for a balanced corpus."""
    histogram = stats.concept_histogram
    curves: list[tuple[str, list[int]]] = []
    if histogram:
        curves = [
            ("before balancing", sorted(histogram.get("before", {}).values(), reverse=True)),
            ("after balancing", sorted(histogram.get("after", {}).values(), reverse=True)),
        ]
    elif stats.concepts:
        curves = [("this corpus", sorted(stats.concepts.values(), reverse=True))]
    curves = [(label, values) for label, values in curves if values]
    if not curves:
        return None
    figure, axes = plt.subplots(figsize=(WIDTH, HEIGHT))
    for colour, (label, values) in zip(COLOURS, curves, strict=False):
        axes.plot(range(1, len(values) + 1), values, marker=".", label=label, color=colour)
    if histogram and stats.manifest.get("options", {}).get("max_per_concept"):
        cap = stats.manifest["options"]["max_per_concept"]
        axes.axhline(cap, linestyle="--", color="#555555", linewidth=1, label=f"cap ({cap})")
    # Log axes only where the range calls for them: a small corpus reads better on plain ones.
    if max(max(values) for _, values in curves) > 50:
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(ScalarFormatter())
    if max(len(values) for _, values in curves) > 50:
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(ScalarFormatter())
    else:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("concept rank")
    axes.set_ylabel("pairs")
    axes.legend(fontsize=8)
    return _render("plot-concept-curve", "Concept frequency curve", figure)


def _histogram(key: str, title: str, series: list[tuple[str, Counter[int]]], xlabel: str) -> Plot | None:
    series = [(label, counts) for label, counts in series if counts]
    if not series:
        return None
    figure, axes = plt.subplots(figsize=(WIDTH, HEIGHT))
    low = min(min(c) for _, c in series)
    high = max(max(c) for _, c in series)
    bins = min(40, max(1, high - low + 1))
    for colour, (label, counts) in zip(COLOURS, series, strict=False):
        values = sorted(counts)
        axes.hist(
            values, bins=bins, range=(low, high + 1), weights=[counts[v] for v in values],
            alpha=0.6 if len(series) > 1 else 0.9, label=label, color=colour,
        )  # fmt: skip
    axes.set_xlabel(xlabel)
    axes.set_ylabel("pairs")
    if len(series) > 1:
        axes.legend(fontsize=8)
    return _render(key, title, figure)


def caption_length_plot(stats: CorpusStats) -> Plot | None:
    return _histogram(
        "plot-caption-length", "Caption length", [("caption", stats.caption_words)], "words per caption"
    )


def image_size_plot(stats: CorpusStats) -> Plot | None:
    return _histogram(
        "plot-image-size", "Image size", [("width", stats.widths), ("height", stats.heights)], "pixels"
    )


def rejects_plot(stats: CorpusStats) -> Plot | None:
    counts = stats.rejects + stats.removals
    if not counts:
        return None
    rows = [(f"{stage}: {reason}", n) for (stage, reason), n in counts.most_common()]
    return _bars("plot-rejects", "Rejects and removals", rows, "inputs")


def all_plots(stats: CorpusStats) -> list[Plot]:
    makers = (
        split_plot, modality_plot, top_concepts_plot, concept_curve_plot,
        caption_length_plot, image_size_plot, rejects_plot,
    )  # fmt: skip
    return [plot for plot in (make(stats) for make in makers) if plot is not None]
