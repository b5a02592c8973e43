"""Plain text of JATS elements (captions, paragraphs, titles) with the spacing a reader sees.

Inline markup (italic, bold, sup, sub, xref, ext-link, named-content, MathML, ...) is joined without
spaces, because ``p<sub>R</sub>`` reads "pR"; block elements (p, title, list-item, ...) are separated by
one space, so ``<p>end.</p><p>Next`` reads "end. Next". Every run of whitespace becomes one space.
Floats and attachments nested in the text (figures inside a paragraph, supplementary files and DOI
object ids inside a caption) are not prose and are left out.
"""

from __future__ import annotations

import html.entities
import re

from lxml import etree

MATHML_NS = "http://www.w3.org/1998/Math/MathML"

BLOCK_TAGS = frozenset(
    {
        "p", "title", "label", "caption", "list", "list-item", "def-list", "def-item", "term", "def",
        "disp-quote", "sec", "table", "thead", "tbody", "tfoot", "tr", "td", "th", "break", "disp-formula",
        "disp-formula-group", "statement", "verse-group", "verse-line", "speech", "preformat", "array",
        "attrib", "code", "fn", "chem-struct-wrap", "subtitle", "alt-title",
    }
)  # fmt: skip

# Not prose: nested floats, attachments, identifiers, and the LaTeX twin of a MathML formula.
SKIPPED_TAGS = frozenset(
    {
        "fig", "fig-group", "table-wrap", "table-wrap-group", "boxed-text", "supplementary-material",
        "media", "object-id", "graphic", "inline-graphic", "tex-math",
        f"{{{MATHML_NS}}}annotation", f"{{{MATHML_NS}}}annotation-xml",
    }
)  # fmt: skip

# eLife ends each caption with "<p><bold>DOI:</bold> <ext-link>http://dx.doi.org/10.7554/...</ext-link></p>".
_DOI_PARAGRAPH = re.compile(r"(?i)^doi:?\s*(?:https?://(?:dx\.)?doi\.org/)?10\.\d{4,9}/\S+$")


def element_text(element: etree._Element) -> str:
    """The normalised text of ``element`` (its tail excluded)."""
    parts: list[str] = []
    _collect(element, parts)
    return " ".join("".join(parts).split())


def caption_text(caption: etree._Element | None) -> str:
    """Title and paragraphs of a ``<caption>``, without DOI-only paragraphs; "" when there is none."""
    if caption is None:
        return ""
    parts: list[str] = [caption.text or ""]
    for child in caption:
        if child.tag in BLOCK_TAGS:
            text = element_text(child)
            if not (child.tag == "p" and _DOI_PARAGRAPH.match(text)):
                parts += (" ", text, " ")
        else:  # inline markup, entities, processing instructions straight inside the caption
            _collect(child, parts)
        parts.append(child.tail or "")
    return " ".join("".join(parts).split())


def _collect(element: etree._Element, parts: list[str]) -> None:
    tag = element.tag
    if not isinstance(tag, str):
        # Comments and processing instructions carry no text; an undeclared entity (kept as a node
        # because entities are never resolved) is mapped when it is a known HTML name.
        if tag is etree.Entity:
            codepoint = html.entities.name2codepoint.get(element.name)
            parts.append(chr(codepoint) if codepoint else " ")
        return
    if tag in SKIPPED_TAGS:
        return
    block = tag in BLOCK_TAGS
    if block:
        parts.append(" ")
    if element.text:
        parts.append(element.text)
    for child in element:
        _collect(child, parts)
        if child.tail:
            parts.append(child.tail)
    if block:
        parts.append(" ")
