"""Find the file a JATS graphic href points to among the files of an article package or folder.

Hrefs and files disagree in practice: legacy PMC hrefs carry no extension ("pone.0000217.g001") while
the package holds "pone.0000217.g001.jpg" (and a ".gif" preview); case differs ("x.tif" vs "X.TIF");
the XML names a ".gif" or ".tif" where the package ships a ".jpg". The rules, in order:

1. Files whose name, minus an image extension, equals the href minus an image extension
   (case-insensitive) are candidates; so are thumbnails of it ("<stem>.thumb.jpg", "<stem>_thumb.png").
2. The best candidate wins: a full image over a thumbnail; JPEG/PNG/TIFF over GIF (in PMC packages the
   GIF is usually the web preview, and it is palette-reduced); the extension the href names over
   another one of the same class; JPEG over PNG over TIFF; the exact spelling over another case.
   So an href "x.gif" resolves to "x.jpg" when both exist, and to "x.gif" when only that exists.
3. Without an image candidate, a file named exactly like the href (ignoring case) is returned, so
   hrefs to other formats ("x.svg", "x.eps") still find their file and fail later at decoding, with a
   clear reason, rather than here.
"""

from __future__ import annotations

from collections.abc import Iterable

# Rank among image formats: a lower rank is preferred (JPEG is what PMC serves; TIFF can be huge or
# CMYK; GIF is a palette preview).
IMAGE_FORMAT_RANK = {".jpg": 0, ".jpeg": 0, ".png": 1, ".tif": 2, ".tiff": 2, ".gif": 3}
_THUMB_SUFFIXES = (".thumb", "_thumb", "-thumb", ".thumbnail", "_thumbnail", "-thumbnail")


def split_image_extension(name: str) -> tuple[str, str]:
    """("x", ".jpg") for "x.JPG"; (name, "") when it does not end in an image extension."""
    dot = name.rfind(".")
    if dot > 0 and name[dot:].lower() in IMAGE_FORMAT_RANK:
        return name[:dot], name[dot:].lower()
    return name, ""


def resolve_href(href: str, names: Iterable[str]) -> str | None:
    """The name in ``names`` that ``href`` points to, or None (see the module docstring for the rules)."""
    wanted = href.strip().rsplit("/", 1)[-1]
    if not wanted:
        return None
    wanted_stem, wanted_ext = split_image_extension(wanted)
    wanted_stem = wanted_stem.lower()
    best: tuple[tuple, str] | None = None
    same_name: list[str] = []
    for name in names:
        base = name.rsplit("/", 1)[-1]
        if base.lower() == wanted.lower():
            same_name.append(name)
        stem, ext = split_image_extension(base)
        if not ext:
            continue
        stem = stem.lower()
        if stem == wanted_stem:
            thumb = 0
        elif stem.startswith(wanted_stem) and stem[len(wanted_stem) :] in _THUMB_SUFFIXES:
            thumb = 1
        else:
            continue
        key = (thumb, ext == ".gif", ext != wanted_ext, IMAGE_FORMAT_RANK[ext], base != wanted, name)
        if best is None or key < best[0]:
            best = (key, name)
    if best is not None:
        return best[1]
    if same_name:
        return min(same_name, key=lambda n: (n.rsplit("/", 1)[-1] != wanted, n))
    return None
