"""parse_jats's shortcuts change nothing: every article read with them equals the article read the
straightforward way (the whole document parsed, every text walked node by node, whitespace normalised
by splitting into words, no caches or single-graphic shortcut).

The shortcuts: the reference list, table insides and contributor block cut out of the bytes before
parsing (connectors.jats._parse_without_reference_lists); libxml2's text join for elements without
special descendants, or whose only ones are plain superscripts / subscripts (swapped for their form); the C-pass whitespace normalisation; cached script forms; the leaf paths of the
text walk; the single-graphic path; ref-types answered without lowercasing; the regular expression
that skips plainly non-citing ref-types in the bytes (checked against the plain scan below).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from connectors import jats, jats_text

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
ARTICLES = sorted(
    p
    for folder in (HERE / "data" / "jats_realworld", ROOT / "sample_data" / "jats", HERE / "jats_cases")
    for p in folder.rglob("*")
    if p.suffix in (".xml", ".nxml")
)


def _walk_children(element: etree._Element, parts: list[str]) -> None:
    """The text walk without its leaf shortcuts: every child through jats_text._collect."""
    if element.text:
        parts.append(element.text)
    for child in element:
        jats_text._collect(child, parts)
        if child.tail:
            parts.append(child.tail)


def _walk(element: etree._Element) -> str:
    parts: list[str] = []
    jats_text._collect(element, parts)
    return "".join(parts)


def _take_the_straightforward_path(patch: pytest.MonkeyPatch) -> None:
    """Every shortcut replaced by the plain way of doing the same thing."""
    patch.setattr(jats, "_parse_without_reference_lists", lambda data: None)
    patch.setattr(jats, "_single_own_graphic", lambda float_element: None)
    patch.setattr(jats, "_NEVER_CITING_REF_TYPES", frozenset())
    patch.setattr(jats_text, "normalize_space", lambda text: " ".join(text.split()))
    patch.setattr(jats_text, "_raw_text", _walk)
    patch.setattr(jats_text, "_collect_children", _walk_children)
    patch.setattr(jats_text, "_may_be_doi", lambda text: True)
    patch.setattr(jats_text, "_script_form", jats_text._uncached_script_form)


@pytest.fixture
def straightforward(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _take_the_straightforward_path(monkeypatch)
    yield


def _read(data: bytes) -> jats.ParsedArticle | tuple[str, str]:
    try:
        return jats.parse_jats(data)
    except jats.JatsError as exc:
        return ("rejected", exc.reason)


@pytest.fixture(scope="module")
def fast_results() -> dict[Path, jats.ParsedArticle | tuple[str, str]]:
    return {path: _read(path.read_bytes()) for path in ARTICLES}


def test_the_corpus_is_there():
    assert len(ARTICLES) >= 25


@pytest.mark.parametrize("path", ARTICLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fast_paths_read_what_the_straightforward_path_reads(
    path: Path, fast_results: dict[Path, jats.ParsedArticle | tuple[str, str]], straightforward: None
):
    assert _read(path.read_bytes()) == fast_results[path]


# --- the shortcuts on markup built to trip them ------------------------------------------------------

_HEAD = b'<?xml version="1.0"?>\n<article xmlns:xlink="http://www.w3.org/1999/xlink">'
_FRONT = (
    b"<front><journal-meta><journal-title-group><journal-title>J</journal-title></journal-title-group>"
    b"</journal-meta><article-meta><article-id pub-id-type='pmcid'>PMC1</article-id>"
    b"<title-group><article-title>T</article-title></title-group>%s"
    b"<pub-date pub-type='epub'><year>2020</year></pub-date></article-meta></front>"
)
_FIG = (
    b'<fig id="f1"><label>Figure 1.</label><caption><p>Cap <sup>2</sup> %s</p></caption>'
    b'<graphic xlink:href="f1.jpg"/></fig>'
)
_TABLE_WRAP = (
    b'<table-wrap id="t1"><label>Table 1</label><caption><p>Tab</p></caption>'
    b'<alternatives><graphic xlink:href="t1.gif"/><table><tbody><tr><td>%s</td></tr></tbody></table>'
    b"</alternatives></table-wrap>"
)
_REFS = b'<back><ref-list><ref id="r1"><mixed-citation>R</mixed-citation></ref></ref-list></back>'


def _article(front_extra: bytes = b"", body: bytes = b"", back: bytes = _REFS, caption: bytes = b"") -> bytes:
    fig = _FIG % caption
    return (
        _HEAD
        + _FRONT % front_extra
        + b"<body><sec><p>See <xref ref-type='fig' rid='f1'>1</xref>.</p>"
        + (fig + body + b"</sec></body>" + back + b"</article>")
    )


TRICKY = {
    "nested reference lists": _article(
        back=b"<back><ref-list><title>R</title><ref-list><ref id='a'/></ref-list>"
        b"<ref-list><ref id='b'/></ref-list></ref-list></back>"
    ),
    "nested list, then references in the outer one": _article(
        back=b"<back><ref-list><ref-list><ref id='a'/></ref-list><ref id='b'/></ref-list></back>"
    ),
    "two reference lists": _article(
        back=b"<back><ref-list><ref id='a'/></ref-list><sec><p>Also <xref ref-type='fig' rid='f1'/>"
        b"</p></sec><ref-list><ref id='b'/></ref-list></back>"
    ),
    "self-closing reference list": _article(back=b"<back><ref-list/></back>"),
    "no reference list": _article(back=b""),
    "table cell citing a figure": _article(
        body=_TABLE_WRAP % b"<p>cell <xref ref-type='FIG' rid='f1'>1</xref></p>"
    ),
    "table cell citing with a character reference": _article(
        body=_TABLE_WRAP % b"<p>cell <xref ref-type='&#102;ig' rid='f1'>1</xref></p>"
    ),
    "table cell citing a table": _article(body=_TABLE_WRAP % b"<xref ref-type = \"Table\" rid='t1'/>"),
    "table cell with references only": _article(
        body=_TABLE_WRAP % b"<xref ref-type='bibr' rid='r1'>1</xref>"
    ),
    "figure in a table cell": _article(body=_TABLE_WRAP % (_FIG.replace(b"f1", b"f9") % b"")),
    "nested table": _article(body=_TABLE_WRAP % b"<table><tr><td>x</td></tr></table>"),
    "comment in a table": _article(body=_TABLE_WRAP % b"<!-- </table> -->"),
    "processing instruction in a table": _article(body=_TABLE_WRAP % b"<?CDATA \\alpha?>"),
    "table in a caption": _article(caption=b"<table><tr><td>in caption</td></tr></table>"),
    "bare table in a citing paragraph": _article(
        body=b"<p>Text <xref ref-type='fig' rid='f1'/> <table><tr><td>bare</td></tr></table></p>"
    ),
    "table-wrap in a citing paragraph": _article(
        body=b"<p>Text <xref ref-type='fig' rid='f1'/>" + _TABLE_WRAP % b"inside" + b" after</p>"
    ),
    "table-wrap without a table": _article(
        body=b'<table-wrap id="t2"><caption><p>c</p></caption><graphic xlink:href="t2.png"/></table-wrap>'
    ),
    "table-wrap with text before its table": _article(
        body=b'<table-wrap id="t3">loose text<table><tr><td>x</td></tr></table></table-wrap>'
    ),
    "contributors citing a figure": _article(
        front_extra=b"<contrib-group><contrib><xref ref-type='fig' rid='f1'/></contrib></contrib-group>"
    ),
    "contributors with affiliations": _article(
        front_extra=b"<contrib-group><contrib><name><surname>S</surname></name>"
        b"<xref ref-type='aff' rid='a1'/></contrib></contrib-group><aff id='a1'>A</aff>"
    ),
    "an id between title and dates": _article(
        front_extra=b"<article-id pub-id-type='doi'>10.1/x</article-id>"
    ),
    "keywords between title and dates": _article(
        front_extra=b"<kwd-group><kwd>k</kwd></kwd-group><contrib-group><contrib/></contrib-group>"
    ),
    "comment among contributors": _article(front_extra=b"<contrib-group><!-- <pub-date> --></contrib-group>"),
    "figure among contributors": _article(front_extra=_FIG.replace(b"f1", b"f8") % b""),
    "scripts and ordinals": _article(
        caption=b"<sup>th</sup> 5<sup>th</sup> 10<sup>-1</sup> H<sub>2</sub>O <sup>a,b</sup> <sub> x </sub>"
        + b"<sup>"
        + b"long " * 20
        + b"</sup> 7<sup>"
        + b"th " * 30
        + b"</sup>"
    ),
    "unicode spaces": _article(caption="a\u2009b\xa0c\u200b d\u3000e  f\n\tg".encode()),
}


# Reference-list tags hidden in the DOCTYPE around an entity declaration: cutting between them would
# hide the declaration from the check that refuses it.
_HIDDEN_DECLARATION = (
    b'<?xml version="1.0"?>\n<!DOCTYPE article PUBLIC "-//X//DTD x>y//EN" "a.dtd" [<!-- <ref-list> -->'
    b'<!ENTITY x "y"><!-- </ref-list> -->]>'
)
TRICKY["entity declared between reference-list tags in the DOCTYPE"] = (
    _HIDDEN_DECLARATION + _article()[len(b'<?xml version="1.0"?>\n') :]
)
TRICKY["internal subset without entities"] = (
    b'<?xml version="1.0"?>\n<!DOCTYPE article [<!ELEMENT article ANY>]>' + _article()[22:]
)


def test_entity_declarations_are_refused_even_with_tags_around_them():
    with pytest.raises(jats.JatsError) as raised:
        jats.parse_jats(TRICKY["entity declared between reference-list tags in the DOCTYPE"])
    assert raised.value.reason == "xml_forbidden"
    assert isinstance(_read(TRICKY["internal subset without entities"]), jats.ParsedArticle)


@pytest.mark.parametrize("name", TRICKY)
def test_tricky_markup_reads_the_same_both_ways(name: str, monkeypatch: pytest.MonkeyPatch):
    data = TRICKY[name]
    fast = _read(data)
    with monkeypatch.context() as patch:
        _take_the_straightforward_path(patch)
        assert _read(data) == fast


def test_cuts_happen_on_the_tricky_markup_where_they_are_safe():
    """The shortcut is taken (the document is cut) for plain cases and refused where it would change
    what is read, so the tests above exercise both branches."""
    plain = TRICKY["table cell with references only"]
    cuts: list[tuple[int, int]] = []
    jats._table_insides(plain, 0, len(plain), cuts)
    assert len(cuts) == 1 and b"<tr>" in plain[cuts[0][0] : cuts[0][1]]
    for name in ("table cell citing a figure", "table cell citing with a character reference", "figure in a table cell",
                 "nested table", "comment in a table", "table in a caption", "bare table in a citing paragraph",
                 "table-wrap with text before its table"):  # fmt: skip
        cuts = []
        jats._table_insides(TRICKY[name], 0, len(TRICKY[name]), cuts)
        assert cuts == [], name
    cuts = []
    jats._authors_and_affiliations(TRICKY["contributors with affiliations"], 0, cuts)
    assert len(cuts) == 1
    for name in ("contributors citing a figure", "an id between title and dates", "keywords between title and dates",
                 "comment among contributors", "figure among contributors"):  # fmt: skip
        cuts = []
        jats._authors_and_affiliations(TRICKY[name], 0, cuts)
        assert cuts == [], name


def test_reference_list_span_is_the_whole_last_list():
    data = TRICKY["nested reference lists"]
    start, end = jats._reference_list_span(data, careful=True)
    assert data[start:end].startswith(b"<ref-list><title>R</title>") and data[start:end].endswith(
        b"</ref-list>"
    )
    assert jats._reference_list_span(data, careful=False) == (start, end)


def test_normalize_space_is_splitting_into_words():
    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    others = ["a", "é", "\u200b", "\xad", "\ue000", "\U0001f600", "x y", "10"]
    rng = random.Random(7)
    for _ in range(20000):
        text = "".join(
            rng.choice(spaces if rng.random() < 0.4 else others) for _ in range(rng.randint(0, 12))
        )
        assert jats_text.normalize_space(text) == " ".join(text.split()), repr(text)


def _may_cite_a_float_plainly(data: bytes) -> bool:
    """_may_cite_a_float without the regular expression that skips plainly non-citing ref-types."""
    position = 0
    while (found := data.find(b"ref-type", position)) >= 0:
        position = found + 8
        value = data[position : position + 24].lstrip(b" \t\r\n=")
        quote = value[:1]
        if quote not in (b'"', b"'"):
            return True
        end = value.find(quote, 1)
        if end >= 0 and (b"&" in value[1:end] or value[1:end].lower() in (b"fig", b"table")):
            return True
    return False


@pytest.mark.parametrize(
    "markup",
    [
        b"<xref ref-type='bibr'/><xref ref-type=\"aff\"/><xref ref-type = 'fn'/>",
        b"<xref ref-type='bibr'/><xref ref-type='fig'/>",
        b"<xref ref-type='BIBR'/><xref ref-type='Table'/>",
        b"<xref ref-type='bibr'/><xref ref-type=\"&#102;ig\"/>",
        b"<xref ref-type='bibr'/><xref ref-type=fig/>",
        b"<xref ref-type='bibr-x'/><xref ref-type='afff'/><xref ref-type='other'/>",
        b"<xref ref-type='bibr\"/><xref ref-type='fig'/>",
        b"<xref ref-type\n=\n'author-notes'/><xref data-ref-type='table'/>",
        b"<xref ref-type='aff'/>" * 40,
    ],
)
def test_suspect_ref_types_are_what_the_plain_scan_suspects(markup: bytes):
    assert jats._may_cite_a_float(markup, 0, len(markup)) == _may_cite_a_float_plainly(markup)


def test_reading_text_leaves_the_tree_as_it_was():
    """The script shortcut swaps script texts for their form while libxml2 joins the text: afterwards the
    tree must read as before, for the caption or mention that reads the same element next."""
    paragraph = etree.fromstring(
        b"<p>10<sup>7</sup> fM in L<sup>-1</sup>, CO<sub>2</sub> and V<sub>max</sub></p>"
    )
    before = etree.tostring(paragraph)
    assert jats_text.element_text(paragraph) == "10⁷ fM in L⁻¹, CO₂ and V_{max}"
    assert etree.tostring(paragraph) == before
    ordinal = etree.fromstring(b"<p>the 5<sup>th</sup> day, x<sup>2</sup></p>")  # the walk's case
    assert jats_text.element_text(ordinal) == "the 5th day, x²"
    assert etree.tostring(ordinal) == b"<p>the 5<sup>th</sup> day, x<sup>2</sup></p>"
