"""The report as one self-contained HTML file: inline CSS, images as data URIs, no script, no link out."""

from __future__ import annotations

from html import escape

from connectors.report.plots import Plot
from connectors.report.samples import Shown
from connectors.report.tables import Table, is_number

CAPTION_CHARS = 280
CONCEPTS_SHOWN = 8

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 0 24px 48px; color: #1d2330; background: #fff; }
h1 { margin: 24px 0 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #d7dbe3; padding-bottom: 4px; }
h3 { margin: 18px 0 6px; font-size: 15px; }
.sub { color: #5b6475; margin: 0 0 12px; }
nav a { margin-right: 12px; color: #3b6ea8; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border-bottom: 1px solid #e4e7ee; padding: 3px 10px; text-align: left; vertical-align: top; }
th { background: #f3f5f9; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.row { display: flex; flex-wrap: wrap; gap: 8px 24px; align-items: flex-start; }
figure { margin: 0; } figure img { max-width: 100%; border: 1px solid #e4e7ee; }
figcaption { font-size: 12px; color: #5b6475; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 12px; }
.card { border: 1px solid #e4e7ee; border-radius: 6px; padding: 8px; font-size: 12px; background: #fafbfd; }
.card img, .pair img, .noimg { width: 100%; height: 170px; object-fit: contain; background: #fff; display: block; }
.noimg { display: flex; align-items: center; justify-content: center; color: #8a93a5; border: 1px dashed #c9ced8; }
.tag { display: inline-block; background: #e7eef8; border-radius: 3px; padding: 0 4px; margin: 1px; }
.mod { background: #fde9d4; } .id { color: #5b6475; word-break: break-all; font-family: monospace; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; border: 1px solid #e4e7ee;
        border-radius: 6px; padding: 8px; margin-bottom: 12px; }
.pair h4 { margin: 0 0 4px; font-size: 12px; } .removed h4 { color: #b0413e; } .kept h4 { color: #3c7a32; }
code { font-size: 12px; word-break: break-all; }
"""


def table_html(table: Table) -> str:
    numeric = (
        [all(is_number(row[i]) for row in table.rows) for i in range(len(table.headers))]
        if table.rows
        else []
    )
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers) if any(table.headers) else ""
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if numeric[i] else ''}>{escape(cell)}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in table.rows
    )
    if not table.rows:
        body = f'<tr><td colspan="{len(table.headers)}">none</td></tr>'
    rows = f"<tr>{head}</tr>" if head else ""
    return f'<div><h3>{escape(table.title)}</h3><table id="{table.key}">{rows}{body}</table></div>'


def plot_html(plot: Plot) -> str:
    return (
        f'<figure><img id="{plot.key}" class="plot" src="{plot.data_uri}" alt="{escape(plot.title)}">'
        f"<figcaption>{escape(plot.title)}</figcaption></figure>"
    )


def image_html(pair: Shown | None, alt: str) -> str:
    if pair is None or pair.thumbnail is None:
        return f'<div class="noimg">{escape("image not available" if pair is None else "image does not decode")}</div>'
    return f'<img class="thumb" src="{pair.thumbnail}" alt="{escape(alt)}">'


def card_html(pair: Shown) -> str:
    caption = pair.caption if len(pair.caption) <= CAPTION_CHARS else pair.caption[:CAPTION_CHARS] + "…"
    concepts = "".join(f'<span class="tag">{escape(c)}</span>' for c in pair.concepts[:CONCEPTS_SHOWN])
    facts = " · ".join(escape(x) for x in (pair.source, pair.license_group, pair.size) if x)
    return (
        f'<div class="card">{image_html(pair, pair.id)}'
        f'<div><span class="tag mod">{escape(pair.modality or "no modality")}</span> {facts}</div>'
        f"<div>{escape(caption)}</div><div>{concepts}</div>"
        f'<div class="id">{escape(pair.id)}</div></div>'
    )


def pair_html(example: dict, removed: Shown | None, kept: Shown | None) -> str:
    similarity = example.get("similarity")
    how = f"{example.get('reason')} at level {example.get('level')}" + (
        f", similarity {similarity}" if similarity is not None else ""
    )
    side = []
    for css, label, record_id, pair in (
        ("removed", "removed", example["removed"], removed),
        (
            "kept",
            "kept" if example.get("reason") == "duplicate" else "evaluation item",
            example.get("kept"),
            kept,
        ),
    ):
        caption = (pair.caption[:160] + ("…" if len(pair.caption) > 160 else "")) if pair else ""
        side.append(
            f'<div class="{css}"><h4>{escape(label + (": " + how if css == "removed" else ""))}</h4>'
            f"{image_html(pair, f'{label} {record_id}')}"
            f'<div class="id">{escape(str(record_id))}</div><div>{escape(caption)}</div></div>'
        )
    return f'<div class="pair">{"".join(side)}</div>'


def render_page(
    name: str,
    tables: dict[str, Table],
    plots: dict[str, Plot],
    samples: dict[str, list[Shown]],
    reject_examples: dict[tuple[str, str], list[dict[str, str]]],
    dropped: list[Shown],
    dedupe_pairs: list[tuple[dict, Shown | None, Shown | None]],
) -> str:
    def row(*keys: str) -> str:
        """The plots and tables named, side by side where the page is wide enough."""
        parts = [
            plot_html(plots[k]) if k in plots else table_html(tables[k])
            for k in keys
            if k in plots or k in tables
        ]
        return f'<div class="row">{"".join(parts)}</div>' if parts else ""

    sections = [
        ("pairs", "Pairs", row("plot-splits", "table-groups")),
        ("modality", "Modality", row("plot-modality", "table-modality")),
    ]
    if "table-concepts" in tables:
        sections.append(
            ("concepts", "Concepts", row("plot-concepts", "plot-concept-curve", "table-concepts"))
        )
    sections.append(
        ("sizes", "Captions and images", row("plot-caption-length", "plot-image-size", "table-sizes"))
    )
    examples = "".join(
        f"<h3>{escape(stage)}: {escape(reason)}</h3><ul>"
        + "".join(f"<li><code>{escape(e['id'])}</code> {escape(e['detail'][:300])}</li>" for e in rows)
        + "</ul>"
        for (stage, reason), rows in reject_examples.items()
    )
    if dropped:
        examples += "<h3>Removed without a reject row (examples)</h3>"
        examples += f'<div class="grid">{"".join(card_html(p) for p in dropped)}</div>'
    sections.append(("rejects", "Rejects and removals", row("plot-rejects", "table-rejects") + examples))
    if dedupe_pairs or "table-dedupe" in tables:
        body = row("table-dedupe") + "".join(pair_html(e, r, k) for e, r, k in dedupe_pairs)
        sections.append(("dedupe", "What dedupe removed", body))
    grid = "".join(
        f'<h3>{escape(modality)} ({len(pairs)} shown)</h3><div class="grid">{"".join(card_html(p) for p in pairs)}</div>'
        for modality, pairs in samples.items()
    )
    sections.append(("samples", "Sample pairs by modality", grid or "<p>No pairs.</p>"))
    sections.append(("lineage", "Lineage", row("table-lineage")))

    nav = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{escape(title)}</h2>{html}</section>' for key, title, html in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing may load from elsewhere: the page must work offline and from a file:// URL.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
        f"<title>{escape(name)}: medcorpus report</title><style>{CSS}</style></head><body>"
        f'<h1>{escape(name)}</h1><p class="sub">medcorpus corpus report</p>'
        f"{row('table-summary')}<nav>{nav}</nav>{body}</body></html>\n"
    )
