"""The report's numbers as tables: the same rows fill the HTML page and `medcorpus stats`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from connectors.report.stats import CorpusStats
from schemas.reasons import REJECT_REASONS

TOP_CONCEPTS = 20


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _quantiles(counts: Counter[int]) -> tuple[str, ...]:
    """min, median, 95th percentile and max of a histogram, without expanding it."""
    total = sum(counts.values())
    if not total:
        return ("-",) * 5
    values = sorted(counts)

    def at(fraction: float) -> int:
        seen = 0
        for value in values:
            seen += counts[value]
            if seen >= fraction * total:
                return value
        return values[-1]

    mean = sum(v * n for v, n in counts.items()) / total
    return (str(values[0]), str(at(0.5)), f"{mean:.1f}", str(at(0.95)), str(values[-1]))


def summary_table(stats: CorpusStats) -> Table:
    manifest = stats.manifest
    rows = [
        ("pipeline", stats.pipeline),
        ("pairs", str(stats.pairs)),
        ("rejected (rows in rejects/)", str(sum(stats.rejects.values()))),
        ("removed (no reject row)", str(sum(stats.removals.values()))),
        ("schema version", str(manifest.get("schema_version", "?"))),
        (
            "manifest reconciled",
            "yes" if manifest.get("reconciled") else "NO: " + "; ".join(manifest.get("problems", [])),
        ),
    ]
    return Table("table-summary", "Summary", ("", ""), rows)


def groups_table(stats: CorpusStats) -> Table:
    rows = [
        (split, source, group, str(n), _percent(n, stats.pairs))
        for (split, source, group), n in sorted(stats.groups.items())
    ]
    return Table(
        "table-groups",
        "Pairs per split, source and licence group",
        ("split", "source", "licence group", "pairs", "share"),
        rows,
    )


def modality_table(stats: CorpusStats) -> Table:
    rows = [(m, str(n), _percent(n, stats.pairs)) for m, n in stats.modalities.most_common()]
    return Table("table-modality", "Modality", ("modality", "pairs", "share"), rows)


def concepts_table(stats: CorpusStats) -> Table | None:
    if not stats.tagged:
        return None
    histogram = stats.concept_histogram or {}
    before = histogram.get("before", {})
    headers = ("CUI", "name", "pairs") + (("before balancing",) if before else ())
    rows = [
        (cui, stats.concept_names.get(cui, ""), str(n)) + ((str(before.get(cui, 0)),) if before else ())
        for cui, n in stats.concepts.most_common(TOP_CONCEPTS)
    ]
    distinct = len(stats.concepts)
    return Table("table-concepts", f"Top concepts ({distinct} distinct in the corpus)", headers, rows)


def sizes_table(stats: CorpusStats) -> Table:
    headers = ("", "min", "median", "mean", "p95", "max")
    rows = [
        ("caption words", *_quantiles(stats.caption_words)),
        ("image width (px)", *_quantiles(stats.widths)),
        ("image height (px)", *_quantiles(stats.heights)),
    ]
    return Table("table-sizes", "Caption length and image size", headers, rows)


def rejects_table(stats: CorpusStats) -> Table:
    rows = [
        (stage, reason, "reject rows", str(n), REJECT_REASONS.get(reason, ""))
        for (stage, reason), n in sorted(stats.rejects.items())
    ]
    rows += [
        (stage, reason, "removed", str(n), REJECT_REASONS.get(reason, ""))
        for (stage, reason), n in sorted(stats.removals.items())
    ]
    return Table(
        "table-rejects",
        "Rejects and removals by stage and reason",
        ("stage", "reason", "kind", "count", "meaning"),
        rows,
    )


def lineage_table(stats: CorpusStats) -> Table:
    rows = [
        (step["pipeline"], step["corpus"], str(step["pairs"]), str(step["rejected"]), str(step["removed"]))
        for step in stats.lineage()
    ]
    return Table(
        "table-lineage", "How this corpus was made", ("step", "corpus", "pairs", "rejected", "removed"), rows
    )


def dedupe_table(stats: CorpusStats) -> Table | None:
    levels = stats.manifest.get("dedupe")
    if not levels:
        return None
    rows = [
        (reason, level, str(n))
        for reason, by_level in sorted(levels.items())
        for level, n in sorted(by_level.items())
    ]
    return Table("table-dedupe", "Dedupe removals by level", ("reason", "level", "pairs"), rows)


def all_tables(stats: CorpusStats) -> list[Table]:
    tables = [
        summary_table(stats), groups_table(stats), modality_table(stats), concepts_table(stats),
        sizes_table(stats), rejects_table(stats), dedupe_table(stats), lineage_table(stats),
    ]  # fmt: skip
    return [t for t in tables if t is not None]


def format_text(tables: list[Table]) -> str:
    """Plain aligned columns for a terminal."""
    out: list[str] = []
    for table in tables:
        out += [table.title, "-" * len(table.title)]
        if not table.rows:
            out += ["(none)", ""]
            continue
        header = table.headers if any(table.headers) else None
        rows = ([header] if header else []) + table.rows
        widths = [max(len(row[i]) for row in rows) for i in range(len(table.headers))]
        numeric = [all(is_number(row[i]) for row in table.rows) for i in range(len(table.headers))]
        for position, row in enumerate(rows):
            cells = [
                cell.rjust(width) if right else cell.ljust(width)
                for cell, width, right in zip(row, widths, numeric, strict=True)
            ]
            out.append("  ".join(cells).rstrip())
            if header and position == 0:
                out.append("  ".join("-" * w for w in widths))
        out.append("")
    return "\n".join(out)


def is_number(text: str) -> bool:
    """Whether a cell is a count, share or measure (right-aligned in both renderings)."""
    return text.replace(".", "", 1).replace("%", "").isdigit() or text == "-"
