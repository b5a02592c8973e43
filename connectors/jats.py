"""Figures (and tables delivered as images) of a JATS article: graphic, label, caption, mentions, metadata.

Every ``<fig>`` is found wherever it sits (body sections, ``floats-group``, ``back/app``, ``boxed-text``,
``sub-article``, inside a ``fig-group`` or nested inside a parent figure as eLife does with figure
supplements), and every ``<table-wrap>`` whose table is a graphic. Each chosen graphic becomes one
:class:`FigureGraphic`; alternatives of one image (``<alternatives>``, a thumbnail beside the full
image) yield one record, the full-size one.

Choices worth knowing:
- Captions are the caption's own title and paragraphs; nested figures, supplementary material, media
  and eLife's "DOI: ..." paragraphs are left out. A float without a caption gets "".
- Labels lose trailing "." or ":" ("Figure 1." reads "Figure 1").
- Mentions are whole paragraphs (``<p>``, the innermost one) that cite the float through an
  ``xref`` of the float's ref-type ("fig" or "table"), in document order, each once. Paragraphs inside
  captions are not mentions. An ``xref`` to a ``fig-group`` counts for every figure of the group.
- The parser never loads a DTD, resolves an entity or touches the network; a document that declares
  entities is refused as ``xml_forbidden`` before any of its content is used.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from lxml import etree

from connectors.jats_href import IMAGE_FORMAT_RANK, resolve_href, split_image_extension
from connectors.jats_text import caption_text, element_text
from schemas.errors import ReasonError

__all__ = [
    "ArticleMeta",
    "FigureGraphic",
    "JatsError",
    "ParsedArticle",
    "SkippedFloat",
    "parse_jats",
    "resolve_href",
]

XLINK_NS = "http://www.w3.org/1999/xlink"
_XLINK_HREF = f"{{{XLINK_NS}}}href"
_XLINK_ROLE = f"{{{XLINK_NS}}}role"

# Graphics below these belong to something else: a nested float, a formula, the caption, a table cell.
_NOT_THE_FLOATS_IMAGE = frozenset(
    {
        "fig", "fig-group", "table-wrap", "table-wrap-group", "caption", "table", "disp-formula",
        "inline-formula", "chem-struct", "chem-struct-wrap", "supplementary-material", "media", "boxed-text",
    }
)  # fmt: skip
_THUMB_WORDS = ("thumb", "icon", "preview")
_WEB_WORDS = ("web", "online", "screen")
_NAMED_SIZE = re.compile(r"(\d{2,5})\s*[x\u00d7]\s*(\d{2,5})")
_PREVIEW_SIDE = 400
_THUMB_HREF = re.compile(r"(?i)[._-]thumb(nail)?$")
_REAL_EXTENSION = re.compile(r"\.([A-Za-z]{2,4})$")
_YEAR = re.compile(r"\d{4}")
_CITING_REF_TYPES = ("fig", "table")
# The commonest other ref-types, answered without lowercasing (an article cites references by the dozen).
_NEVER_CITING_REF_TYPES = frozenset(
    {"bibr", "aff", "fn", "table-fn", "corresp", "supplementary-material", "disp-formula", "sec"}
)
_AFTER_TAG_NAME = (b" ", b"\t", b"\r", b"\n", b">", b"/")
# Tags a table-wrap may hold before its table (see _table_inside), with their end tags.
_TABLE_WRAP_HEAD = (
    (b"<label", b"</label"), (b"<caption", b"</caption"), (b"<object-id", b"</object-id"), (b"<graphic", b"</graphic")
)  # fmt: skip
_NOT_PLAIN_IN_TABLE = re.compile(rb"<(?:xref|fig|table|!|\?)")
_STRUCTURE_IN_TABLE = re.compile(rb"<(?:fig|table|!|\?)")
_READ_IN_FRONT = re.compile(
    rb"<(?:xref|fig|table|!|\?|article-id|title-group|pub-date|kwd|abstract|article-meta|front)"
)
_READ_IN_FRONT_NOT_XREF = re.compile(
    rb"<(?:fig|table|!|\?|article-id|title-group|pub-date|kwd|abstract|article-meta|front)"
)
_DOCTYPE_MARK = re.compile(rb"[\"'\[>]")
# A ``ref-type`` whose value is not plainly (quoted, lower case) one of the commonest types that never
# cite a float: contributors cite affiliations and tables cite references by the dozen, and only the
# suspects are looked at one by one (_may_cite_a_float).
_PLAINLY_NOT_CITING = (
    rb"(?:bibr|aff|fn|table-fn|corresp|supplementary-material|disp-formula|sec|other|author-notes)"
)
_SUSPECT_REF_TYPE = re.compile(
    rb"ref-type(?![ \t\r\n]*=[ \t\r\n]*(?:\"" + _PLAINLY_NOT_CITING + rb"\"|'" + _PLAINLY_NOT_CITING + rb"'))"
)
_FORBIDDEN_ERRORS = frozenset({etree.ErrorTypes.ERR_RESOURCE_LIMIT, etree.ErrorTypes.ERR_ENTITY_LOOP})


class JatsError(ReasonError):
    """An article that cannot be used; ``reason`` is one of xml_malformed, xml_forbidden, xml_not_jats."""


@dataclass
class ArticleMeta:
    pmcid: str | None = None
    pmid: str | None = None
    doi: str | None = None
    journal: str | None = None
    year: int | None = None
    title: str | None = None
    keywords: list[str] = field(default_factory=list)


@dataclass
class FigureGraphic:
    key: str  # unique in the article: "<id>", "<id>/a" for the first of several images, "fig-<n>" without id
    kind: str  # "figure" | "table"
    label: str | None
    caption: str
    group_caption: str | None
    mentions: list[str]
    href: str  # the chosen rendition's xlink:href as written
    # Other renditions of the same image, best first (an <alternatives> group, print/online twins): the
    # package's actual pixel sizes can still overrule the markup (connectors.pmc_figures).
    alternatives: list[str] = field(default_factory=list)


@dataclass
class SkippedFloat:
    """A figure (or a table with graphics) that yields no record, so callers can report it."""

    key: str
    kind: str
    reason: str  # "no_graphic": no graphic with an href (a video-only figure, an empty graphic)
    detail: str


@dataclass
class ParsedArticle:
    meta: ArticleMeta
    figures: list[FigureGraphic]
    skipped: list[SkippedFloat] = field(default_factory=list)


def parse_jats(xml: bytes) -> ParsedArticle:
    """Metadata and figure records of one JATS article; raises :class:`JatsError`."""
    article = _article_element(_parse(xml))
    figures, skipped = _floats(article)
    return ParsedArticle(meta=_meta(article), figures=figures, skipped=skipped)


# --- parsing ---------------------------------------------------------------------------------------


def _parser(recover: bool = False) -> etree.XMLParser:
    # A new parser per document: lxml parsers must not be shared between threads.
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=recover
    )


_THREAD = threading.local()


def _thread_parser() -> etree.XMLParser:
    """This thread's strict parser, made once: a parser costs as much to make as a small document to
    parse, and lxml parsers may be reused by one thread (never shared between threads)."""
    parser: etree.XMLParser | None = getattr(_THREAD, "parser", None)
    if parser is None:
        parser = _THREAD.parser = _parser()
    return parser


def _parse(xml: bytes) -> etree._Element:
    if not isinstance(xml, bytes | bytearray | memoryview):
        raise TypeError(f"parse_jats takes the document's bytes, not {type(xml).__name__}")
    data = bytes(xml)
    if not data:
        raise JatsError("xml_malformed", "the document is empty")
    root = _parse_without_reference_lists(data)
    if root is None:
        parser = _parser()
        try:
            root = etree.fromstring(data, parser)
        except etree.XMLSyntaxError as exc:
            root = _parse_with_undeclared_prefixes(data, parser.error_log, exc)
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and next(dtd.iterentities(), None) is not None:
        names = ", ".join(entity.name for entity in dtd.iterentities())
        raise JatsError("xml_forbidden", f"the DOCTYPE declares entities ({names})")
    return root


def _parse_without_reference_lists(data: bytes) -> etree._Element | None:
    """The tree without the parts of the document that are never read, or None when there is nothing
    to cut or the cut document does not parse.

    libxml2's time goes with bytes and elements, and an article's (last) ``<ref-list>`` is a third to
    a half of its bytes, the rows and cells of its XHTML tables a third of its elements, its
    contributors and affiliations a tenth; none holds a figure, a caption or a mention, so they are cut
    out of the bytes before it builds a tree. They are found with ``bytes.find`` / ``rfind`` on long
    needles (a regular expression over the whole document costs more than it saves), and the rest is
    joined with one copy. Cuts start after the prolog, which is left whole: a DOCTYPE with an internal
    subset (where entities are declared) is not cut at all, so the refusal of documents that declare
    entities is decided on what the author wrote. The checks for well-formedness apply to what is
    parsed. Any doubt (a namespace prefix, an unbalanced cut, a parse error, say from a ``ref-list``
    tag inside a comment) ends in None and the caller parses the whole document.
    """
    found = _never_read(data)
    if found is None:
        return None
    cuts, span, tables_from = found
    root = _parse_cut(data, cuts)
    if root is None and span is not None:
        # A nested list can fool the quick look for where the last one starts: walk its tags.
        careful = _reference_list_span(data, careful=True)
        if careful is not None and careful != span and careful[0] >= tables_from:
            cuts = [cut for cut in cuts if cut[1] <= careful[0] or cut[0] >= careful[1]]
            root = _parse_cut(data, sorted([*cuts, careful]))
    return root


def _never_read(data: bytes) -> tuple[list[tuple[int, int]], tuple[int, int] | None, int] | None:
    """The byte ranges to cut (sorted), the reference list's among them, and where the search for
    tables began; None when there is nothing to cut."""
    root_start = _root_start(data)
    if root_start is None:
        return None
    cuts: list[tuple[int, int]] = []
    _authors_and_affiliations(data, root_start, cuts)
    span = _reference_list_span(data, careful=False)
    tables_from = cuts[-1][1] if cuts else root_start
    if span is None or span[0] < tables_from:
        span = None
        _table_insides(data, tables_from, len(data), cuts)
    else:
        _table_insides(data, tables_from, span[0], cuts)
        cuts.append(span)
        _table_insides(data, span[1], len(data), cuts)
    return (cuts, span, tables_from) if cuts else None


def _root_start(data: bytes) -> int | None:
    """Where the root element starts, past the XML declaration, comments, processing instructions and
    a DOCTYPE; None for a DOCTYPE with an internal subset (``[...]``) or a prolog not understood."""
    position = 0
    for _ in range(64):
        tag = data.find(b"<", position)
        if tag < 0 or (tag != position and data[position:tag].strip(b" \t\r\n\xef\xbb\xbf")):
            return None
        if data.startswith(b"<?", tag):
            end = data.find(b"?>", tag)
            position = end + 2
        elif data.startswith(b"<!--", tag):
            end = data.find(b"-->", tag)
            position = end + 3
        elif data.startswith(b"<!DOCTYPE", tag):
            end = _doctype_end(data, tag + 9)
            position = end + 1
        else:
            return tag
        if end < 0:
            return None
    return None


def _doctype_end(data: bytes, position: int) -> int:
    """The ``>`` that ends a DOCTYPE without an internal subset, skipping quoted ids; -1 otherwise."""
    while True:
        found = _DOCTYPE_MARK.search(data, position)
        if found is None or found.group() == b"[":
            return -1
        if found.group() == b">":
            return found.start()
        position = data.find(found.group(), found.end()) + 1  # past the closing quote
        if position == 0:
            return -1


def _parse_cut(data: bytes, cuts: list[tuple[int, int]]) -> etree._Element | None:
    """``data`` without the (sorted, disjoint) ``cuts``, parsed; None when that is not well-formed."""
    view = memoryview(data)
    pieces: list[memoryview] = []
    position = 0
    for start, end in cuts:
        pieces.append(view[position:start])
        position = end
    pieces.append(view[position:])
    try:
        return etree.fromstring(b"".join(pieces), _thread_parser())
    except etree.XMLSyntaxError:
        return None


def _reference_list_span(data: bytes, careful: bool) -> tuple[int, int] | None:
    """Start and end of the last top-level ``<ref-list>...</ref-list>``, nested lists inside it included.

    Found from the end, as reference lists sit there: only the list and what follows it are scanned.
    Unless ``careful``, the opening tag nearest the last closing tag is taken to be its own, unless a
    closing tag just before that one shows a nested list; a nested list further up makes that cut
    unbalanced, which libxml2 rejects, and the caller asks again carefully: then tags are walked
    backwards, a closing tag between an opening tag and the cursor being taken first.
    """
    end_tag = data.rfind(b"</ref-list")
    if end_tag < 0:
        return None
    close = data.find(b">", end_tag)
    if close < 0:
        return None
    if not careful:
        inner = data.rfind(b"</ref-list>", max(end_tag - 256, 0), end_tag)
        careful = inner >= 0 and not data[inner + 11 : end_tag].strip()
    depth, cursor = 1, end_tag
    while True:
        open_tag = data.rfind(b"<ref-list", 0, cursor)
        if open_tag < 0:
            return None
        if careful:
            inner_end = data.rfind(b"</ref-list", open_tag, cursor)
            if inner_end >= 0:  # a nested list closes after this opening tag: take its end first
                depth += 1
                cursor = inner_end
                continue
        tag_close = data.find(b">", open_tag, cursor)
        if tag_close < 0 or data[open_tag + 9 : open_tag + 10] not in _AFTER_TAG_NAME:
            return None
        cursor = open_tag
        if data[tag_close - 1] != 0x2F:  # <ref-list/> opens nothing
            depth -= 1
            if depth == 0:
                return open_tag, close + 1


def _authors_and_affiliations(data: bytes, start: int, cuts: list[tuple[int, int]]) -> None:
    """Append to ``cuts`` what the article's ``<article-meta>`` holds between its ``</title-group>`` and
    its first ``<pub-date``: in JATS's fixed order the contributors, affiliations and author notes, a
    tenth of an article's elements, none of which is read.

    The front comes first, so these are short searches; see _unread for what the cut may not hold.
    (Cutting what lies between the dates and the abstract too, volume to permissions, cost as much
    time as it saved.)
    """
    meta = data.find(b"<article-meta", start)
    meta_end = data.find(b"</article-meta>", meta) if meta >= 0 else -1
    title_end = data.find(b"</title-group>", meta, meta_end) if meta_end >= 0 else -1
    dates = data.find(b"<pub-date", title_end, meta_end) if title_end >= 0 else -1
    if dates >= 0 and _unread(data, title_end + 14, dates):
        cuts.append((title_end + 14, dates))


def _unread(data: bytes, start: int, end: int) -> bool:
    """Whether ``data[start:end]`` in the article-meta holds nothing that is read: no ids, titles, dates,
    keywords, abstract, figure, table, comment / CDATA / processing instruction, or xref that may cite
    a float. An unbalanced cut does not parse, and the caller then parses the whole document."""
    first = _READ_IN_FRONT.search(data, start, end)
    return first is None or (
        data[first.start() + 1] == 0x78  # "<xref"
        and _READ_IN_FRONT_NOT_XREF.search(data, first.end(), end) is None
        and not _may_cite_a_float(data, first.start(), end)
    )


def _table_insides(data: bytes, start: int, stop: int, cuts: list[tuple[int, int]]) -> None:
    """Append to ``cuts`` the insides (rows, cells) of the ``<table>`` of each ``<table-wrap>`` in
    ``data[start:stop]`` whose insides can only ever be skipped.

    The text of a table-wrap is never prose (captions and labels are its own children, and it is
    skipped inside paragraphs), and graphics inside a table are not the float's image, so the
    ``<table>`` element stays, empty. A table is left whole unless it is the table-wrap's child (or
    its ``<alternatives>``' child) after only a label, caption, object-id or graphic, and its insides
    hold no figure, no nested table, no comment / CDATA / processing instruction, and no ``xref``
    that could cite a float.
    """
    position = start
    while True:
        tag = data.find(b"<table-wrap", position, stop)
        if tag < 0:
            return
        position = tag + 11
        if data[position : position + 1] not in _AFTER_TAG_NAME:  # table-wrap-foot, table-wrap-group
            continue
        span = _table_inside(data, position, stop)
        if span is not None:
            cuts.append(span)
            position = span[1]


def _table_inside(data: bytes, position: int, stop: int) -> tuple[int, int] | None:
    """The cut for the table of the table-wrap whose tag name ends at ``position``, if it is safe."""
    close = data.find(b">", position, stop)
    if close < 0 or data[close - 1] == 0x2F:
        return None
    position = close + 1
    while True:  # the table-wrap's children up to its table, one tag at a time
        tag = data.find(b"<", position, stop)
        if tag < 0 or (tag != position and not data[position:tag].isspace()):
            return None
        if data.startswith(b"<table", tag):
            if data[tag + 6 : tag + 7] not in _AFTER_TAG_NAME:
                return None
            close = data.find(b">", tag, stop)
            end = data.find(b"</table>", close, stop) if close > 0 and data[close - 1] != 0x2F else -1
            if end < 0:
                return None
            first = _NOT_PLAIN_IN_TABLE.search(data, close + 1, end)
            if first is not None and (
                data[first.start() + 1] != 0x78  # not "<xref": a figure, a table, "<!", "<?"
                or _STRUCTURE_IN_TABLE.search(data, first.end(), end) is not None
                or _may_cite_a_float(data, first.start(), end)
            ):
                return None
            return close + 1, end
        if data.startswith(b"<alternatives", tag) and data[tag + 13 : tag + 14] in _AFTER_TAG_NAME:
            close = data.find(b">", tag, stop)
            if close < 0 or data[close - 1] == 0x2F:
                return None
            position = close + 1
            continue
        for opening, closing in _TABLE_WRAP_HEAD:
            if (
                data.startswith(opening, tag)
                and data[tag + len(opening) : tag + len(opening) + 1] in _AFTER_TAG_NAME
            ):
                close = data.find(b">", tag, stop)
                if close > 0 and data[close - 1] != 0x2F:  # not self-closing: skip to its end tag
                    close = data.find(closing, close, stop)
                    close = data.find(b">", close, stop) if close >= 0 else -1
                if close < 0:
                    return None
                position = close + 1
                break
        else:
            return None


def _may_cite_a_float(data: bytes, start: int, stop: int) -> bool:
    """Whether some ``ref-type`` in ``data[start:stop]`` could read "fig" or "table" (any case).

    One regular-expression search skips the ``ref-type``s plainly naming a type that never cites a
    float; each other one is read (a value that is unquoted, holds a character reference or reads
    "fig" / "table" in any case may cite one)."""
    position = start
    while True:
        suspect = _SUSPECT_REF_TYPE.search(data, position, stop)
        if suspect is None:
            return False
        position = suspect.end()
        value = data[position : position + 24].lstrip(b" \t\r\n=")
        quote = value[:1]
        if quote != b'"' and quote != b"'":
            return True
        end = value.find(quote, 1)
        if end < 0:  # longer than any citing type
            continue
        value = value[1:end]
        if b"&" in value or value.lower() in (b"fig", b"table"):  # "&#102;ig" reads "fig"
            return True


def _parse_with_undeclared_prefixes(
    data: bytes, errors: etree._ListErrorLog, exc: etree.XMLSyntaxError
) -> etree._Element:
    """Accept a document whose only fault is an undeclared prefix (``xlink:href`` without xmlns:xlink)."""
    if b"<!ENTITY" in data:
        raise JatsError("xml_forbidden", f"the DOCTYPE declares entities ({exc})") from exc
    if any(error.type in _FORBIDDEN_ERRORS for error in errors):
        raise JatsError("xml_forbidden", str(exc)) from exc
    if _only_undeclared_prefixes(errors):
        parser = _parser(recover=True)
        root = etree.fromstring(data, parser)
        if root is not None and _only_undeclared_prefixes(parser.error_log):
            return root
    raise JatsError("xml_malformed", str(exc)) from exc


def _only_undeclared_prefixes(errors: etree._ListErrorLog) -> bool:
    serious = [error for error in errors if error.level >= etree.ErrorLevels.ERROR]
    return bool(serious) and all(
        error.type == etree.ErrorTypes.NS_ERR_UNDEFINED_NAMESPACE for error in serious
    )


def _article_element(root: etree._Element) -> etree._Element:
    if root.tag.startswith("{"):
        _drop_default_namespace(root)
    if root.tag == "pmc-articleset":  # the wrapper NCBI's efetch puts around articles
        articles = root.findall("article")
        if len(articles) != 1:
            raise JatsError(
                "xml_not_jats", f"<pmc-articleset> holds {len(articles)} articles; parse them one by one"
            )
        root = articles[0]
    if root.tag != "article":
        raise JatsError("xml_not_jats", f"the root element is <{root.tag}>, not <article>")
    return root


def _drop_default_namespace(root: etree._Element) -> None:
    """JATS in a namespace (rare) gets plain tag names, so one set of names serves every document."""
    prefix = root.tag[: root.tag.index("}") + 1]
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith(prefix):
            element.tag = element.tag[len(prefix) :]


# --- figures and tables ----------------------------------------------------------------------------


def _floats(article: etree._Element) -> tuple[list[FigureGraphic], list[SkippedFloat]]:
    floats, citing = _floats_and_citing_xrefs(article)
    mentions = _Mentions(citing)
    figures: list[FigureGraphic] = []
    skipped: list[SkippedFloat] = []
    used_keys: set[str] = set()
    counts = {"fig": 0, "table-wrap": 0}
    for element in floats:
        tag = element.tag
        counts[tag] += 1
        kind = "figure" if tag == "fig" else "table"
        base_key = element.get("id") or f"{'fig' if kind == 'figure' else 'table'}-{counts[tag]}"
        graphics, had_graphics = _chosen_graphics(element)
        if not graphics:
            if kind == "figure" or had_graphics:
                detail = "its graphics have no href" if had_graphics else "it has no graphic"
                skipped.append(SkippedFloat(_unique(base_key, used_keys), kind, "no_graphic", detail))
            continue
        label = _label(element)
        caption = caption_text(next(element.iterchildren("caption"), None))
        groups = list(element.iterancestors("fig-group", "table-wrap-group"))
        group_caption = (
            (caption_text(next(groups[0].iterchildren("caption"), None)) or None) if groups else None
        )
        cited_by = mentions.of(element, groups)
        for index, (href, *alternatives) in enumerate(graphics):
            key = base_key if len(graphics) == 1 else f"{base_key}/{_letters(index)}"
            figures.append(
                FigureGraphic(
                    key=_unique(key, used_keys),
                    kind=kind,
                    label=label,
                    caption=caption,
                    group_caption=group_caption,
                    mentions=list(cited_by),
                    href=href,
                    alternatives=alternatives,
                )
            )
    return figures, skipped


def _floats_and_citing_xrefs(
    article: etree._Element,
) -> tuple[list[etree._Element], list[tuple[str, etree._Element]]]:
    """Every ``fig`` and ``table-wrap`` in document order, and every ``xref`` of ref-type "fig" or
    "table" (any case) with that type: one walk over the tree in C for both."""
    floats: list[etree._Element] = []
    citing: list[tuple[str, etree._Element]] = []
    for element in article.iter("fig", "table-wrap", "xref"):
        if element.tag != "xref":
            floats.append(element)
            continue
        ref_type = element.get("ref-type")
        if ref_type is None or ref_type in _NEVER_CITING_REF_TYPES:
            continue
        if ref_type not in _CITING_REF_TYPES:
            ref_type = ref_type.lower()
            if ref_type not in _CITING_REF_TYPES:
                continue
        citing.append((ref_type, element))
    return floats, citing


def _chosen_graphics(float_element: etree._Element) -> tuple[list[list[str]], bool]:
    """The float's images in document order, each as its renditions' hrefs (best first), and whether the
    float had any graphic element at all.

    Each ``<alternatives>`` is one image. Loose graphics are one image each, except that graphics with
    the same name in two formats ("f1.eps" beside "f1.jpg") or a print / online pair are one image, and
    loose thumbnails are previews of the float's full images that count only when it has nothing else.
    """
    single = _single_own_graphic(float_element)
    if single is not None:
        href = _href(single)
        return ([[href]] if href else []), True
    images: list[tuple[bool, list[etree._Element]]] = []  # (an <alternatives> group?, renditions)
    group_of: dict[etree._Element, list[etree._Element]] = {}
    had_graphics = False
    for graphic in float_element.iter("graphic"):
        parent = graphic.getparent()
        if not _belongs_to(parent, float_element):
            continue
        had_graphics = True
        if not _href(graphic):
            continue
        if parent.tag == "alternatives":
            if parent not in group_of:
                group_of[parent] = []
                images.append((True, group_of[parent]))
            group_of[parent].append(graphic)
        else:
            images.append((False, [graphic]))
    if len(images) > 1:
        if sum(1 for grouped, _ in images if not grouped) > 1:
            images = _merge_loose_renditions(images)
        thumbs = [all(_is_thumb(g) for g in graphics) for _, graphics in images]
        if not all(thumbs):
            images = [image for image, thumb in zip(images, thumbs, strict=True) if image[0] or not thumb]
    return [
        [_href(g) for g in (sorted(graphics, key=_rendition_rank) if len(graphics) > 1 else graphics)]
        for _, graphics in images
    ], had_graphics


def _single_own_graphic(float_element: etree._Element) -> etree._Element | None:
    """The float's only graphic when it is the float's own child (the commonest float), else None: that
    one needs none of the grouping, merging and ranking of renditions."""
    found = float_element.iter("graphic")
    first, second = next(found, None), next(found, None)
    return first if first is not None and second is None and first.getparent() is float_element else None


def _belongs_to(element: etree._Element, float_element: etree._Element) -> bool:
    """Whether a graphic whose parent is ``element`` is the float's own (not a nested float's, a
    formula's or the caption's)."""
    while element is not float_element:
        if element.tag in _NOT_THE_FLOATS_IMAGE:
            return False
        element = element.getparent()
    return True


def _merge_loose_renditions(
    images: list[tuple[bool, list[etree._Element]]],
) -> list[tuple[bool, list[etree._Element]]]:
    """Loose graphics that are one image in several formats become one image (at the first one's place)."""
    loose = [graphics[0] for grouped, graphics in images if not grouped]
    media = [_medium(g) for g in loose]
    if len(loose) == 2 and sorted(media) == ["online", "print"]:
        same_image = {id(g): 0 for g in loose}
    else:
        stems: dict[str, int] = {}
        same_image = {id(g): stems.setdefault(_stem(g), len(stems)) for g in loose}
    merged: list[tuple[bool, list[etree._Element]]] = []
    slot_of: dict[int, int] = {}
    for grouped, graphics in images:
        if grouped:
            merged.append((grouped, graphics))
            continue
        image = same_image[id(graphics[0])]
        if image in slot_of:
            merged[slot_of[image]][1].append(graphics[0])
        else:
            slot_of[image] = len(merged)
            merged.append((False, list(graphics)))
    return merged


def _stem(graphic: etree._Element) -> str:
    name = (_href(graphic) or "").strip().rsplit("/", 1)[-1]
    return _REAL_EXTENSION.sub("", name).lower()


def _medium(graphic: etree._Element) -> str:
    """ "print", "online" or "" from a graphic's content-type / specific-use."""
    marks = f"{graphic.get('content-type') or ''} {graphic.get('specific-use') or ''}".lower()
    if "print" in marks:
        return "print"
    if any(word in marks for word in _WEB_WORDS):
        return "online"
    return ""


def _rendition_rank(graphic: etree._Element) -> tuple[bool, int, float, bool, int]:
    """Which rendition of one image to use; lower is better, ties keep document order.

    1. a full image before a preview (a thumbnail word, or an attribute naming a size of at most
       ``_PREVIEW_SIDE`` pixels such as SciELO's ``scielo-267x140``);
    2. a format every reader decodes (JPEG, PNG, or no extension: legacy PMC hrefs name the JPEG
       without it) before GIF and TIFF, before what Pillow cannot read (EPS, SVG, PDF);
    3. the larger of two sizes named by attributes (an unmarked rendition counts as the original);
    4. a rendition marked for the web / online before one marked for print;
    5. JPEG before PNG.
    """
    href = _href(graphic) or ""
    _, ext = split_image_extension(href)
    if ext:
        rank = IMAGE_FORMAT_RANK[ext]
        decodable = 0 if ext in (".jpg", ".jpeg", ".png") else 1
    else:
        rank, decodable = (9, 2) if _REAL_EXTENSION.search(href) else (0, 0)
    area = _named_area(graphic)
    return _is_thumb(graphic), decodable, -area, _medium(graphic) != "online", rank


def _named_area(graphic: etree._Element) -> float:
    """Pixels of the size an attribute names ("scielo-267x140"); infinite when none is named."""
    for attribute in ("content-type", "specific-use"):
        match = _NAMED_SIZE.search(graphic.get(attribute) or "")
        if match:
            return float(int(match.group(1)) * int(match.group(2)))
    return float("inf")


def _is_thumb(graphic: etree._Element) -> bool:
    for attribute in ("content-type", "specific-use", _XLINK_ROLE):
        value = (graphic.get(attribute) or "").lower()
        if any(word in value for word in _THUMB_WORDS):
            return True
        match = _NAMED_SIZE.search(value)
        if match and max(int(match.group(1)), int(match.group(2))) <= _PREVIEW_SIDE:
            return True
    stem, _ = split_image_extension(_href(graphic) or "")
    return bool(_THUMB_HREF.search(stem))


def _href(graphic: etree._Element) -> str | None:
    """The graphic's xlink:href under whatever prefix, or a bare href; never xlink:title or a child's text."""
    value = graphic.get(_XLINK_HREF)
    if value is None:
        for name, candidate in graphic.attrib.items():
            # "xlink:href" literally when the prefix was undeclared; "href" from sloppy producers
            if name == "href" or name.endswith((":href", "}href")):
                value = candidate
                break
    return value if value and value.strip() else None


def _label(float_element: etree._Element) -> str | None:
    label = next(float_element.iterchildren("label"), None)
    if label is None:
        return None
    return element_text(label).rstrip(".: ") or None


def _unique(key: str, used: set[str]) -> str:
    candidate, n = key, 1
    while candidate in used:
        n += 1
        candidate = f"{key}-{n}"
    used.add(candidate)
    return candidate


def _letters(index: int) -> str:
    """0 -> "a", 25 -> "z", 26 -> "aa": sub-figure suffixes."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return letters


class _Mentions:
    """Paragraphs citing each float, indexed once per article."""

    def __init__(self, citing: list[tuple[str, etree._Element]]) -> None:
        self._paragraphs: dict[tuple[str, str], dict[etree._Element, None]] = {}
        self._order: dict[etree._Element, int] = {}
        self._texts: dict[etree._Element, str] = {}
        for ref_type, xref in citing:
            paragraph = _citing_paragraph(xref)
            if paragraph is None:
                continue
            self._order.setdefault(paragraph, len(self._order))
            for rid in (xref.get("rid") or "").split():
                self._paragraphs.setdefault((ref_type, rid), {})[paragraph] = None

    def of(self, float_element: etree._Element, groups: list[etree._Element]) -> list[str]:
        """Texts of the paragraphs citing the float or one of its ``groups`` (enclosing fig-groups)."""
        ref_type = "fig" if float_element.tag == "fig" else "table"
        ids = [float_element.get("id")]
        ids += [group.get("id") for group in groups]
        paragraphs: dict[etree._Element, None] = {}
        for id_ in ids:
            if id_:
                paragraphs.update(self._paragraphs.get((ref_type, id_), {}))
        if not paragraphs:
            return []
        texts = (self._text(p) for p in sorted(paragraphs, key=self._order.__getitem__))
        return [text for text in texts if text]

    def _text(self, paragraph: etree._Element) -> str:
        if paragraph not in self._texts:
            self._texts[paragraph] = element_text(paragraph)
        return self._texts[paragraph]


def _citing_paragraph(xref: etree._Element) -> etree._Element | None:
    """The innermost ``p`` around ``xref``, or None when it has none or sits in a caption (one walk up)."""
    paragraph = None
    for ancestor in xref.iterancestors("p", "caption"):
        if ancestor.tag == "caption":
            return None
        if paragraph is None:
            paragraph = ancestor
    return paragraph


# --- metadata --------------------------------------------------------------------------------------


def _meta(article: etree._Element) -> ArticleMeta:
    # Child steps with iterchildren (C) rather than find("a/b") paths (ElementPath runs in Python).
    fronts = list(article.iterchildren("front"))
    journal_meta = _first_grandchild(fronts, "journal-meta")
    article_meta = _first_grandchild(fronts, "article-meta")
    meta = ArticleMeta(journal=_journal(journal_meta))
    if article_meta is None:
        return meta
    ids: dict[str, str] = {}
    for article_id in article_meta.iterchildren("article-id"):
        value = element_text(article_id)
        ids.setdefault((article_id.get("pub-id-type") or "").lower(), value)
    meta.pmcid = _pmcid(ids.get("pmcid") or ids.get("pmc"))
    meta.pmid = ids.get("pmid") or None
    meta.doi = ids.get("doi") or None
    meta.year = _year(article_meta)
    title = _first_grandchild(article_meta.iterchildren("title-group"), "article-title")
    meta.title = (element_text(title) or None) if title is not None else None
    keywords = (
        element_text(kwd)
        for group in article_meta.iterchildren("kwd-group")
        for kwd in group.iterchildren("kwd")
    )
    meta.keywords = list(dict.fromkeys(k for k in keywords if k))
    return meta


def _first_grandchild(parents: Iterable[etree._Element], tag: str) -> etree._Element | None:
    """What ``find("parent/tag")`` finds: the first ``tag`` child of the parents, in document order."""
    for parent in parents:
        for child in parent.iterchildren(tag):
            return child
    return None


def _pmcid(value: str | None) -> str | None:
    if not value:
        return None
    if value.isdigit():
        return f"PMC{value}"
    if value[:3].upper() == "PMC" and value[3:].isdigit():
        return f"PMC{value[3:]}"
    return value


def _journal(journal_meta: etree._Element | None) -> str | None:
    if journal_meta is None:
        return None
    for tag in ("journal-title", "abbrev-journal-title"):  # .//journal-title, then .//abbrev-journal-title
        found = next(journal_meta.iter(tag), None)
        if found is not None and (text := element_text(found)):
            return text
    for found in journal_meta.iterchildren("journal-id"):  # journal-id[@journal-id-type='nlm-ta']
        if found.get("journal-id-type") == "nlm-ta":
            return element_text(found) or None
    return None


def _year(article_meta: etree._Element) -> int | None:
    """The year of first publication: electronic, then print, then untyped, then collection dates."""
    dated: list[tuple[int, int]] = []
    for pub_date in article_meta.iterchildren("pub-date"):
        year = next(pub_date.iterchildren("year"), None)
        match = _YEAR.search(year.text or "") if year is not None else None
        if match:
            dated.append((_pub_date_rank(pub_date), int(match.group())))
    return min(dated)[1] if dated else None


def _pub_date_rank(pub_date: etree._Element) -> int:
    kind = (pub_date.get("pub-type") or pub_date.get("date-type") or "").lower()
    medium = (pub_date.get("publication-format") or "").lower()
    if kind == "epub" or (kind == "pub" and medium == "electronic"):
        return 0
    if kind in ("ppub", "epub-ppub") or (kind == "pub" and medium == "print"):
        return 1
    if kind in ("", "pub"):
        return 2
    if kind == "collection":
        return 3
    return 5 if kind == "pmc-release" else 4
