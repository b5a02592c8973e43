"""The documents written beside a corpus's shards at the end of every run: `croissant.json` (always) and
`report.html` (when matplotlib, the `report` extra, is installed; otherwise a warning says how to get it)."""

from __future__ import annotations

import logging
from typing import Any

from connectors.croissant import write_croissant

log = logging.getLogger(__name__)


def write_corpus_documents(folder: str, manifest: dict[str, Any], name: str, title: str) -> None:
    """Write both into `folder`, a finished corpus (its `manifest.json` already written)."""
    write_croissant(folder, manifest, name, title)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log.warning("report.html not written: it needs matplotlib (pip install 'medcorpus[report]')")
        return
    from connectors.report import write_report

    write_report(folder, name, manifest)
