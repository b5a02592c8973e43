"""Plain text of JATS elements (captions, paragraphs, titles) with the spacing and meaning a reader sees.

Spacing. Inline markup (italic, bold, xref, ext-link, named-content, MathML, ...) is joined without
spaces; block elements (p, title, list-item, ...) are separated by one space, so ``<p>end.</p><p>Next``
reads "end. Next". Every run of whitespace becomes one space. Floats and attachments nested in the text
(figures inside a paragraph, supplementary files and DOI object ids inside a caption) are not prose and
are left out.

Superscripts and subscripts keep their meaning (``10<sup>7</sup> fM`` must not read "107 fM"):

- a script made only of digits, signs and parentheses becomes Unicode super/subscript characters:
  ``10<sup>7</sup>`` "10⁷", ``L<sup>-1</sup>`` "L⁻¹", ``Ca<sup>2+</sup>`` "Ca²⁺", ``CO<sub>2</sub>`` "CO₂"
  (an en dash counts as a minus sign, except after a digit, where it is a range: ``I<sub>1–2</sub>``
  "I_{1–2}");
- an ordinal suffix after a number stays plain: ``5<sup>th</sup>`` "5th";
- anything else gets caret / underscore notation, with braces when longer than one character:
  ``<sup>a</sup>`` "^a", ``V<sub>max</sub>`` "V_{max}", ``<sup>12,13</sup>`` "^{12,13}".
  MathML's ``msup`` / ``msub`` / ``msubsup`` follow the same rule.

MathML reads as its token elements' text (``mi``, ``mn``, ``mo``, ``mtext``, ``ms``), each trimmed and
joined without spaces: whitespace between MathML elements is layout, not text (MathML 3, section
2.1.7), so ``<mn>0</mn> <mo>.</mo> <mn>1</mn>`` reads "0.1" however the publisher indented it.

Formulas keep one readable copy. Where a formula has MathML, its text is used and a ``tex-math`` twin is
dropped; where it has only ``tex-math``, the TeX body is kept: without PMC's
``\\documentclass ... \\begin{document}`` wrapper, without ``$``/``$$``/``\\[ \\]`` delimiters, and read
from ``<?CDATA ...?>`` processing instructions too (IOP puts the TeX there).
"""

from __future__ import annotations

import functools
import html.entities
import re

from lxml import etree

MATHML_NS = "http://www.w3.org/1998/Math/MathML"
_MML = f"{{{MATHML_NS}}}"

BLOCK_TAGS = frozenset(
    {
        "p", "title", "label", "caption", "list", "list-item", "def-list", "def-item", "term", "def",
        "disp-quote", "sec", "table", "thead", "tbody", "tfoot", "tr", "td", "th", "break", "disp-formula",
        "disp-formula-group", "statement", "verse-group", "verse-line", "speech", "preformat", "array",
        "attrib", "code", "fn", "chem-struct-wrap", "subtitle", "alt-title",
    }
)  # fmt: skip

# Not prose: nested floats, attachments, identifiers, and the TeX source MathML carries as annotation.
SKIPPED_TAGS = frozenset(
    {
        "fig", "fig-group", "table-wrap", "table-wrap-group", "boxed-text", "supplementary-material",
        "media", "object-id", "graphic", "inline-graphic",
        f"{_MML}annotation", f"{_MML}annotation-xml", "annotation", "annotation-xml",
    }
)  # fmt: skip

_SCRIPT_TAGS = {"sup": "^", "sub": "_"}
_MATH_SCRIPT_TAGS = frozenset({f"{_MML}msup", f"{_MML}msub", f"{_MML}msubsup", "msup", "msub", "msubsup"})
_FORMULA_TAGS = frozenset({"inline-formula", "disp-formula"})
_MATH_TAGS = (f"{_MML}math", "math")
# MathML's text is its token elements' text; whitespace between elements is layout (MathML 3, 2.1.7).
_MATH_TOKENS = tuple(f"{prefix}{name}" for prefix in (_MML, "") for name in ("mi", "mn", "mo", "mtext", "ms"))
_MATH_TOKEN_SET = frozenset(_MATH_TOKENS)
_MATH_SKIPPED = frozenset({f"{_MML}annotation", f"{_MML}annotation-xml", "annotation", "annotation-xml"})
_MATH_STRUCTURE = _MATH_SCRIPT_TAGS | _MATH_SKIPPED
_XML_SPACE = " \t\r\n"  # what MathML trims from tokens; a thin space (U+2009) is text

# Elements that need more than "all the text, joined": everything above.
_SPECIAL_TAGS = frozenset(
    BLOCK_TAGS
    | SKIPPED_TAGS
    | _SCRIPT_TAGS.keys()
    | _MATH_SCRIPT_TAGS
    | _FORMULA_TAGS
    | {"tex-math", *_MATH_TAGS}
)

_SUPERSCRIPT = str.maketrans("0123456789+-\u2212\u2013=()", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁻⁼⁽⁾")
_SUBSCRIPT = str.maketrans("0123456789+-\u2212\u2013=()", "₀₁₂₃₄₅₆₇₈₉₊₋₋₋₌₍₎")
_UNICODE_SCRIPT = re.compile(r"[0-9+\-\u2212\u2013=()]+")
# An en dash after a digit is a range ("I<sub>1–2</sub>": incisors 1 to 2), not a minus sign.
_RANGE_DASH = re.compile("[0-9]\u2013")
_ORDINAL = re.compile(r"(?i)st|nd|rd|th")
_ENDS_IN_DIGIT = re.compile(r"\d\s*$")

_TEX_DOCUMENT = re.compile(r"(?s)\\begin\{document\}(.*?)(?:\\end\{document\}|$)")
_TEX_DELIMITERS = re.compile(r"(?s)^\s*(?:\$\$(.*)\$\$|\$(.*)\$|\\\[(.*)\\\]|\\\((.*)\\\))\s*$")

# eLife ends each caption with "<p><bold>DOI:</bold> <ext-link>http://dx.doi.org/10.7554/...</ext-link></p>".
_DOI_PARAGRAPH = re.compile(r"(?i)^doi:?\s*(?:https?://(?:dx\.)?doi\.org/)?10\.\d{4,9}/\S+$")


def normalize_space(text: str) -> str:
    """``" ".join(text.split())``: runs of whitespace (Unicode's too) become one space, none at the ends.

    Splitting a paragraph into words costs more than the rest of its extraction, so the common cases
    are done with a few C passes instead: once line breaks and tabs are spaces, an ASCII text's only
    other whitespace are six control characters (looked for with ``in``), and ``isprintable()`` is
    False for every whitespace character but the ASCII space; without them only doubled and outer
    spaces are left to remove (most doubled spaces are indentation: long runs go four at a time).
    Any other whitespace (a thin space, NBSP) takes the word split.
    """
    text = text.replace("\n", " ").replace("\t", " ").replace("\r", " ")
    if text.isascii():  # O(1)
        if (
            "\x0b" in text or "\x0c" in text or "\x1c" in text or "\x1d" in text or "\x1e" in text
            or "\x1f" in text
        ):  # fmt: skip
            return " ".join(text.split())
    elif not text.isprintable():
        return " ".join(text.split())
    if "  " in text:
        text = text.replace("    ", " ").replace("  ", " ")
        while "  " in text:
            text = text.replace("  ", " ")
    return text.strip(" ")


def element_text(element: etree._Element) -> str:
    """The normalised text of ``element`` (its tail excluded)."""
    return normalize_space(_raw_text(element))


def _raw_text(element: etree._Element) -> str:
    """The text of ``element`` before whitespace is normalised: ``normalize_space`` of it is its text.

    Most paragraphs and titles hold only inline markup and plain superscripts / subscripts, and libxml2
    joins their text in C; the scripts are written in their readable form for that moment (see
    _joined_with_scripts). Anything else (a block, a float, a formula, an entity, a script holding
    markup or a possible ordinal) takes the walk in Python."""
    if not len(element):  # a leaf (a title, a label, an id): its text as it is
        return element.text or ""
    scripts = _plain_scripts(element)
    if scripts is not None:
        text = _joined_with_scripts(element, scripts)
        if text is not None:
            return text
    parts: list[str] = []
    _collect(element, parts)
    return "".join(parts)


def _plain_scripts(element: etree._Element) -> list[etree._Element] | None:
    """The leaf ``sup`` / ``sub`` descendants when nothing else needs more than its text joined, else None.

    A set lookup per node in Python: lxml's own multi-tag filter costs ten times as much here."""
    scripts: list[etree._Element] = []
    for node in element.iterdescendants():
        tag = node.tag
        if tag.__class__ is not str or tag in _SPECIAL_TAGS:
            if tag in _SCRIPT_TAGS and not len(node):
                scripts.append(node)
                continue
            return None
    return scripts


def _joined_with_scripts(element: etree._Element, scripts: list[etree._Element]) -> str | None:
    """libxml2's text of ``element`` with each of ``scripts`` in its readable form, or None when one of
    them may be an ordinal suffix (its form depends on the text ahead, which only the walk knows).

    The scripts' text is swapped for their form while libxml2 serialises and put back before this
    returns, so the tree reads as it did for everyone else."""
    if not scripts:
        return etree.tostring(element, method="text", encoding=str, with_tail=False)
    originals: list[tuple[etree._Element, str | None]] = []
    try:
        for node in scripts:
            text = node.text or ""
            mark = _SCRIPT_TAGS[node.tag]
            written = _script_form(text, mark) if len(text) <= 64 else _uncached_script_form(text, mark)
            if written is None:
                return None
            originals.append((node, node.text))
            node.text = written
        return etree.tostring(element, method="text", encoding=str, with_tail=False)
    finally:
        for node, text in originals:
            node.text = text


def caption_text(caption: etree._Element | None) -> str:
    """Title and paragraphs of a ``<caption>``, without DOI-only paragraphs; "" when there is none."""
    if caption is None:
        return ""
    parts: list[str] = [caption.text or ""]
    for child in caption:
        if child.tag in BLOCK_TAGS:
            # Blocks are spaced apart and all is normalised once at the end, so a block's own text is
            # normalised only when it might be an eLife "DOI: ..." paragraph.
            text = _raw_text(child)
            if child.tag == "p" and _may_be_doi(text) and _DOI_PARAGRAPH.match(normalize_space(text)):
                parts.append(child.tail or "")
                continue
            parts += (" ", text, " ")
        else:  # inline markup, entities, processing instructions straight inside the caption
            _collect(child, parts)
        parts.append(child.tail or "")
    return normalize_space("".join(parts))


def _may_be_doi(text: str) -> bool:
    """False when ``text`` cannot match ``_DOI_PARAGRAPH``, whose normalised form starts with "doi"."""
    head = text[:64]
    return head.isspace() or head.lstrip()[:3].lower() == "doi"


def script_text(text: str, mark: str, before: str = "") -> str:
    """A superscript (``mark`` "^") or subscript ("_") written readably; ``before`` is the text ahead."""
    return _script(text, mark, [before])


def _script(text: str, mark: str, parts: list[str]) -> str:
    """``script_text`` with the text ahead being ``parts`` (read only for an ordinal, which is rare)."""
    # Only short scripts are cached, so a document of long ones cannot fill memory with them.
    written = _script_form(text, mark) if len(text) <= 64 else _uncached_script_form(text, mark)
    if written is None:  # "th" after a number stays plain; otherwise "^{th}"
        words = normalize_space(text)
        lead = " " if text[0].isspace() else ""
        trail = " " if text[-1].isspace() else ""
        written = (
            f"{lead}{words if _ENDS_IN_DIGIT.search(_last_text(parts)) else _marked(words, mark)}{trail}"
        )
    return written


def _uncached_script_form(text: str, mark: str) -> str | None:
    """A script's readable form, or None for a possible ordinal suffix, which depends on the text ahead."""
    words = normalize_space(text)
    if not words:
        return " " if text else ""
    # "t<sub>KCN </sub>(timing": a space inside the script still separates words outside it
    lead = " " if text[0].isspace() else ""
    trail = " " if text[-1].isspace() else ""
    if _UNICODE_SCRIPT.fullmatch(words) and not _RANGE_DASH.search(words):
        written = words.translate(_SUPERSCRIPT if mark == "^" else _SUBSCRIPT)
    elif mark == "^" and _ORDINAL.fullmatch(words):
        return None
    else:
        written = _marked(words, mark)
    return f"{lead}{written}{trail}"


# An article repeats the same few scripts ("2" in CO2, "H" in a chemical shift) many times.
_script_form = functools.lru_cache(maxsize=4096)(_uncached_script_form)


def _marked(words: str, mark: str) -> str:
    return f"{mark}{words}" if len(words) == 1 else f"{mark}{{{words}}}"


def tex_text(tex_math: etree._Element) -> str:
    """The readable body of a ``tex-math`` element (see the module docstring)."""
    pieces = [tex_math.text or ""]
    for child in tex_math:
        if child.tag is etree.PI:  # <?CDATA \alpha?>: the PI's text is the TeX
            pieces.append(child.text or "")
        elif isinstance(child.tag, str):
            pieces.append("".join(child.itertext()))
        pieces.append(child.tail or "")
    tex = "".join(pieces)
    if (document := _TEX_DOCUMENT.search(tex)) is not None:
        tex = document.group(1)
    if (delimited := _TEX_DELIMITERS.match(tex)) is not None:
        tex = next(group for group in delimited.groups() if group is not None)
    return normalize_space(tex)


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
    if tag in _SCRIPT_TAGS:
        inner: list[str] = []
        _collect_children(element, inner)
        parts.append(_script("".join(inner), _SCRIPT_TAGS[tag], parts))
        return
    if tag in _MATH_TAGS or tag in _MATH_SCRIPT_TAGS:
        parts.append(math_text(element))
        return
    if tag == "tex-math":
        parts.append(tex_text(element))
        return
    block = tag in BLOCK_TAGS
    if block:
        parts.append(" ")
    if tag in _FORMULA_TAGS and next(element.iter(*_MATH_TAGS), None) is not None:
        _collect_formula_without_tex(element, parts)
    else:
        _collect_children(element, parts)
    if block:
        parts.append(" ")


def _collect_children(element: etree._Element, parts: list[str]) -> None:
    if element.text:
        parts.append(element.text)
    for child in element:
        tag = child.tag
        # Leaves, the commonest nodes, without a call: inline markup (italic, xref, ...) gives its
        # text, a superscript or subscript its readable form; everything else takes the general way.
        if tag.__class__ is str and not len(child):
            if tag not in _SPECIAL_TAGS:
                text = child.text
                if text:
                    parts.append(text)
            elif tag in _SCRIPT_TAGS:
                parts.append(_script(child.text or "", _SCRIPT_TAGS[tag], parts))
            else:
                _collect(child, parts)
        else:
            _collect(child, parts)
        tail = child.tail
        if tail:
            parts.append(tail)


def _collect_formula_without_tex(element: etree._Element, parts: list[str]) -> None:
    """A formula with MathML: its text once, never also its TeX twin."""
    if element.text:
        parts.append(element.text)
    for child in element:
        if child.tag == "alternatives":
            _collect_formula_without_tex(child, parts)
        elif child.tag != "tex-math":
            _collect(child, parts)
        if child.tail:
            parts.append(child.tail)


def math_text(element: etree._Element) -> str:
    """The text of a MathML element: its tokens' text (mi, mn, mo, mtext, ms), each without its outer
    XML whitespace, joined without spaces; annotations (the TeX source) left out; ``msup`` / ``msub`` /
    ``msubsup`` written like ``<sup>`` / ``<sub>`` (see the module docstring).

    Most formulas hold neither scripts nor annotations: one flat pass reads them. (lxml's multi-tag
    filters cost more here than a set lookup per node.)"""
    parts: list[str] = []
    for node in element.iter():
        tag = node.tag
        if tag in _MATH_TOKEN_SET:
            parts.append((node.text or "").strip(_XML_SPACE))
        elif tag in _MATH_STRUCTURE:
            return _math_walk(element)
    return "".join(parts)


def _math_walk(node: etree._Element) -> str:
    tag = node.tag
    if tag in _MATH_TOKEN_SET:
        return (node.text or "").strip(_XML_SPACE)
    if tag in _MATH_SKIPPED:
        return ""
    children = [child for child in node if child.tag.__class__ is str]
    if tag not in _MATH_SCRIPT_TAGS:
        return "".join([_math_walk(child) for child in children])
    if not children:
        return ""
    base = _math_walk(children[0])
    marks = ("_", "^") if tag.endswith("msubsup") else ("^" if tag.endswith("msup") else "_",)
    return base + "".join(
        [
            script_text(_math_walk(script), mark, base)
            for script, mark in zip(children[1:], marks, strict=False)
        ]
    )


def _last_text(parts: list[str]) -> str:
    for part in reversed(parts):
        if part.strip():
            return part
    return ""
