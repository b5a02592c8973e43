"""The corpus report: `report.html` in the corpus folder, one self-contained page (see `page`), and the
same numbers as terminal tables (`medcorpus stats`).

    from connectors.report import write_report
    write_report("out/demo/corpus-tagged")      # -> "out/demo/corpus-tagged/report.html"

Every pipeline run writes it before publishing its corpus (`pipelines.runner`). Plots need the
`report` extra (matplotlib); the numbers alone (`corpus_tables`) do not.
"""

from __future__ import annotations

from typing import Any

from connectors import fs
from connectors.corpus import read_manifest
from connectors.report.stats import CorpusStats, compute_stats, input_corpora
from connectors.report.tables import Table, all_tables, format_text

REPORT = "report.html"

__all__ = [
    "REPORT",
    "CorpusStats",
    "compute_stats",
    "corpus_tables",
    "format_text",
    "render_report",
    "write_report",
]


def corpus_tables(corpus: str) -> list[Table]:
    """The report's numbers for `corpus` as tables (what `medcorpus stats` prints)."""
    return all_tables(compute_stats(corpus))


def render_report(corpus: str, name: str | None = None, manifest: dict[str, Any] | None = None) -> str:
    """The report page of `corpus` as HTML text. `name` titles it (default: the folder's name)."""
    try:
        from connectors.report import plots
    except ImportError as exc:  # matplotlib: the `report` extra
        from schemas.errors import ReasonError

        raise ReasonError(
            "extra_missing", f"the corpus report needs matplotlib: pip install 'medcorpus[report]' ({exc})"
        ) from exc
    from connectors.report.page import render_page
    from connectors.report.samples import dropped_examples, find_rows, sampled_pairs

    stats = compute_stats(corpus, manifest if manifest is not None else read_manifest(corpus))
    sources = input_corpora(stats.manifest)
    dropped = dropped_examples(corpus, sources[0]) if stats.pipeline == "balance" and sources else []
    # Dedupe's removed pairs are only in its inputs; the kept ones are here (or, for an evaluation
    # item, in an --against corpus).
    wanted = [e["removed"] for e in stats.dedupe_examples] + [
        e["kept"] for e in stats.dedupe_examples if e["kept"]
    ]
    against = [a for a in stats.manifest.get("inputs", {}).get("against", []) if isinstance(a, str)]
    found = find_rows([corpus, *sources, *against], wanted) if wanted else {}
    dedupe_pairs = [(e, found.get(e["removed"]), found.get(e["kept"] or "")) for e in stats.dedupe_examples]
    return render_page(
        name or _folder_name(corpus),
        {t.key: t for t in all_tables(stats)},
        {p.key: p for p in plots.all_plots(stats)},
        sampled_pairs(stats.samples),
        stats.reject_examples,
        dropped,
        dedupe_pairs,
    )


def write_report(corpus: str, name: str | None = None, manifest: dict[str, Any] | None = None) -> str:
    """Write `<corpus>/report.html` for a finished corpus folder; returns its path.

    `manifest`: pass it when the folder's `manifest.json` is not written yet (a run's staging folder);
    `name` titles the page (default: the folder's name)."""
    html = render_report(corpus, name, manifest)
    filesystem, path = fs.filesystem(corpus)
    target = fs.join(path, REPORT)
    with filesystem.open(target, "w", encoding="utf-8") as f:
        f.write(html)
    return fs.join(corpus, REPORT)


def _folder_name(corpus: str) -> str:
    return corpus.rstrip("/").rsplit("/", 1)[-1] or corpus
