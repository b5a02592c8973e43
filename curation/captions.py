"""Caption cleaning: the text a pair keeps, whatever produced it."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u200b\u200c\u200d\u2060\ufeff]")
_SPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?)\]])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[])\s+")


def clean_caption(text: str | None) -> str:
    """NFC-normalised, control and zero-width characters removed, whitespace collapsed.

    Only spacing is touched, never words: a space before closing punctuation or after an opening
    bracket is an artefact of joining XML text nodes, not something an author wrote.
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text).replace("\u00a0", " ")
    text = _SPACE.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    return _SPACE_AFTER_OPEN.sub(r"\1", text)


def caption_reject_reason(caption: str, min_chars: int = 1) -> str | None:
    """None when the caption is usable, else the reject reason."""
    if not caption:
        return "caption_empty"
    if len(caption) < min_chars:
        return "caption_too_short"
    return None
