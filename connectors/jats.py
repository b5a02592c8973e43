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
_THUMB_WORDS = ("thumb", "icon")
_THUMB_HREF = re.compile(r"(?i)[._-]thumb(nail)?$")
_REAL_EXTENSION = re.compile(r"\.([A-Za-z]{2,4})$")
_YEAR = re.compile(r"\d{4}")
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
    href: str  # the graphic's xlink:href as written


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


def _parse(xml: bytes) -> etree._Element:
    if not isinstance(xml, bytes | bytearray | memoryview):
        raise TypeError(f"parse_jats takes the document's bytes, not {type(xml).__name__}")
    data = bytes(xml)
    if not data:
        raise JatsError("xml_malformed", "the document is empty")
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
    mentions = _Mentions(article)
    figures: list[FigureGraphic] = []
    skipped: list[SkippedFloat] = []
    used_keys: set[str] = set()
    counts = {"fig": 0, "table-wrap": 0}
    for element in article.iter("fig", "table-wrap"):
        counts[element.tag] += 1
        kind = "figure" if element.tag == "fig" else "table"
        base_key = element.get("id") or f"{'fig' if kind == 'figure' else 'table'}-{counts[element.tag]}"
        graphics, had_graphics = _chosen_graphics(element)
        if not graphics:
            if kind == "figure" or had_graphics:
                detail = "its graphics have no href" if had_graphics else "it has no graphic"
                skipped.append(SkippedFloat(_unique(base_key, used_keys), kind, "no_graphic", detail))
            continue
        label = _label(element)
        caption = caption_text(element.find("caption"))
        group_caption = _group_caption(element)
        cited_by = mentions.of(element)
        for index, href in enumerate(graphics):
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
                )
            )
    return figures, skipped


def _chosen_graphics(float_element: etree._Element) -> tuple[list[str], bool]:
    """Hrefs of the float's images in document order, and whether it had any graphic element at all.

    Each ``<alternatives>`` is one image (its best graphic); loose graphics are one image each,
    except that loose thumbnails are previews of the float's full images and count only when the
    float has nothing else.
    """
    images: list[tuple[bool, etree._Element]] = []  # (is an <alternatives> choice, graphic)
    had_graphics = _gather_graphics(float_element, images)
    thumbs = [_is_thumb(graphic) for _, graphic in images]
    if not all(thumbs):
        images = [image for image, thumb in zip(images, thumbs, strict=True) if image[0] or not thumb]
    return [_href(graphic) for _, graphic in images], had_graphics


def _gather_graphics(element: etree._Element, images: list[tuple[bool, etree._Element]]) -> bool:
    had_graphics = False
    for child in element:
        tag = child.tag
        if tag == "graphic":
            had_graphics = True
            if _href(child):
                images.append((False, child))
        elif tag == "alternatives":
            candidates = [g for g in child if g.tag == "graphic"]
            had_graphics = had_graphics or bool(candidates)
            candidates = [g for g in candidates if _href(g)]
            if candidates:
                images.append((True, min(candidates, key=_preference)))
        elif isinstance(tag, str) and tag not in _NOT_THE_FLOATS_IMAGE:
            had_graphics = _gather_graphics(child, images) or had_graphics
    return had_graphics


def _preference(graphic: etree._Element) -> tuple[bool, int]:
    """Full image before thumbnail, then the raster format Pillow reads best; ties keep document order."""
    href = _href(graphic) or ""
    _, ext = split_image_extension(href)
    if ext:
        rank = IMAGE_FORMAT_RANK[ext]
    else:
        # "x.svg", "x.eps": a format Pillow cannot read; "pone.0000217.g001": no extension at all.
        rank = 9 if _REAL_EXTENSION.search(href) else 0
    return _is_thumb(graphic), rank


def _is_thumb(graphic: etree._Element) -> bool:
    for attribute in ("content-type", "specific-use", _XLINK_ROLE):
        value = (graphic.get(attribute) or "").lower()
        if any(word in value for word in _THUMB_WORDS):
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
    label = float_element.find("label")
    if label is None:
        return None
    return element_text(label).rstrip(".: ") or None


def _group_caption(float_element: etree._Element) -> str | None:
    for ancestor in float_element.iterancestors("fig-group", "table-wrap-group"):
        return caption_text(ancestor.find("caption")) or None
    return None


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

    def __init__(self, article: etree._Element) -> None:
        self._paragraphs: dict[tuple[str, str], dict[etree._Element, None]] = {}
        self._order: dict[etree._Element, int] = {}
        self._texts: dict[etree._Element, str] = {}
        for xref in article.iter("xref"):
            ref_type = (xref.get("ref-type") or "").lower()
            if ref_type not in ("fig", "table"):
                continue
            paragraph = _citing_paragraph(xref)
            if paragraph is None:
                continue
            self._order.setdefault(paragraph, len(self._order))
            for rid in (xref.get("rid") or "").split():
                self._paragraphs.setdefault((ref_type, rid), {})[paragraph] = None

    def of(self, float_element: etree._Element) -> list[str]:
        ref_type = "fig" if float_element.tag == "fig" else "table"
        ids = [float_element.get("id")]
        ids += [group.get("id") for group in float_element.iterancestors("fig-group", "table-wrap-group")]
        paragraphs: dict[etree._Element, None] = {}
        for id_ in ids:
            if id_:
                paragraphs.update(self._paragraphs.get((ref_type, id_), {}))
        texts = (self._text(p) for p in sorted(paragraphs, key=self._order.__getitem__))
        return [text for text in texts if text]

    def _text(self, paragraph: etree._Element) -> str:
        if paragraph not in self._texts:
            self._texts[paragraph] = element_text(paragraph)
        return self._texts[paragraph]


def _citing_paragraph(xref: etree._Element) -> etree._Element | None:
    if next(xref.iterancestors("caption"), None) is not None:
        return None
    return next(xref.iterancestors("p"), None)


# --- metadata --------------------------------------------------------------------------------------


def _meta(article: etree._Element) -> ArticleMeta:
    journal_meta = article.find("front/journal-meta")
    article_meta = article.find("front/article-meta")
    meta = ArticleMeta(journal=_journal(journal_meta))
    if article_meta is None:
        return meta
    ids: dict[str, str] = {}
    for article_id in article_meta.iterfind("article-id"):
        value = element_text(article_id)
        ids.setdefault((article_id.get("pub-id-type") or "").lower(), value)
    meta.pmcid = _pmcid(ids.get("pmcid") or ids.get("pmc"))
    meta.pmid = ids.get("pmid") or None
    meta.doi = ids.get("doi") or None
    meta.year = _year(article_meta)
    title = article_meta.find("title-group/article-title")
    meta.title = (element_text(title) or None) if title is not None else None
    keywords = (element_text(kwd) for kwd in article_meta.iterfind("kwd-group/kwd"))
    meta.keywords = list(dict.fromkeys(k for k in keywords if k))
    return meta


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
    for path in (".//journal-title", ".//abbrev-journal-title", "journal-id[@journal-id-type='nlm-ta']"):
        found = journal_meta.find(path)
        if found is not None and (text := element_text(found)):
            return text
    return None


def _year(article_meta: etree._Element) -> int | None:
    """The year of first publication: electronic, then print, then untyped, then collection dates."""
    dated: list[tuple[int, int]] = []
    for pub_date in article_meta.iterfind("pub-date"):
        match = _YEAR.search(pub_date.findtext("year") or "")
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
