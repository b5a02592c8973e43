"""Every real article collected from public repositories (tests/connectors/data/jats_realworld/, each
family's SOURCES.md names the repository, commit and licence of each file): no crash, and the fast
path (reference lists cut out of the bytes before parsing) reads exactly what the whole document says.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import jats

REALWORLD = Path(__file__).parent / "data" / "jats_realworld"
ARTICLES = sorted(p for p in REALWORLD.rglob("*") if p.suffix in (".xml", ".nxml"))


def test_the_collection_spans_publishers():
    assert len({p.parent.name for p in ARTICLES}) >= 5
    for folder in {p.parent for p in ARTICLES}:
        assert (folder / "SOURCES.md").is_file(), f"{folder.name} has no SOURCES.md"


@pytest.mark.parametrize("path", ARTICLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_article_parses_and_shortcut_changes_nothing(path: Path, monkeypatch: pytest.MonkeyPatch):
    data = path.read_bytes()
    try:
        fast = jats.parse_jats(data)
    except jats.JatsError as exc:  # a reasoned reject is fine; a crash is not
        assert exc.reason in ("xml_malformed", "xml_forbidden", "xml_not_jats")
        return
    for figure in fast.figures:
        assert figure.href and figure.key
    monkeypatch.setattr(jats, "_parse_without_reference_lists", lambda data: None)
    assert jats.parse_jats(data) == fast
