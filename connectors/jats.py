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
_THUMB_WORDS = ("thumb", "icon", "preview")
_WEB_WORDS = ("web", "online", "screen")
_NAMED_SIZE = re.compile(r"(\d{2,5})\s*[x\u00d7]\s*(\d{2,5})")
_PREVIEW_SIDE = 400
_THUMB_HREF = re.compile(r"(?i)[._-]thumb(nail)?$")
_REAL_EXTENSION = re.compile(r"\.([A-Za-z]{2,4})$")
_YEAR = re.compile(r"\d{4}")
_AFTER_TAG_NAME = (b" ", b"\t", b"\r", b"\n", b">", b"/")
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
    """The tree without its ``<ref-list>`` elements, or None when that shortcut does not apply.

    Reference lists are a third to a half of an article's bytes and hold no figure, caption or
    mention, so they are cut out of the bytes before libxml2 builds a tree of them (found with
    ``bytes.find``: a regular expression over the whole document costs more than it saves). The checks
    for well-formedness and forbidden entities apply to what is parsed. Any doubt (a namespace prefix,
    an unbalanced cut, a parse error, say from a ``ref-list`` tag inside a comment) ends in None and
    the caller parses the whole document.
    """
    kept: list[bytes] = []
    depth = position = cut_start = 0
    scan = data.find(b"<ref-list")
    if scan < 0:
        return None
    while True:
        start, end = data.find(b"<ref-list", scan), data.find(b"</ref-list", scan)
        if end < 0:
            break
        tag = start if 0 <= start < end else end
        close = data.find(b">", tag)
        if close < 0:
            return None
        scan = close + 1
        if tag == end:
            depth -= 1
            if depth < 0:
                return None
            if depth == 0:
                kept.append(data[position:cut_start])
                position = scan
        elif data[tag + 9 : tag + 10] in _AFTER_TAG_NAME and data[close - 1] != 0x2F:  # not <ref-list/>
            if depth == 0:
                cut_start = tag
            depth += 1
    if depth != 0 or not kept:
        return None
    kept.append(data[position:])
    try:
        return etree.fromstring(b"".join(kept), _parser())
    except etree.XMLSyntaxError:
        return None


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


def _chosen_graphics(float_element: etree._Element) -> tuple[list[list[str]], bool]:
    """The float's images in document order, each as its renditions' hrefs (best first), and whether the
    float had any graphic element at all.

    Each ``<alternatives>`` is one image. Loose graphics are one image each, except that graphics with
    the same name in two formats ("f1.eps" beside "f1.jpg") or a print / online pair are one image, and
    loose thumbnails are previews of the float's full images that count only when it has nothing else.
    """
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
