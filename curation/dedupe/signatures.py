"""What dedupe compares: a 64-bit perceptual hash of the image and a normalised caption key.

The perceptual hash is pHash (Zauner, 2010; the algorithm of `imagehash.phash` and imagededup's PHash):
the image in greyscale, shrunk to 32x32, its 2-D DCT, and one bit per coefficient of the 8x8 lowest
frequencies, set when the coefficient is above their median. Re-encoding, rescaling and greyscale copies
keep almost every bit; small crops and rotations flip a few (see the README for the distances measured). Written here on Pillow + SciPy
(rather than depending on `imagehash`) so that decoding can use JPEG draft mode: a 1.5 MP JPEG is
decoded at 1/8 scale, which is what makes hashing cheaper than the decode the ingest already paid for.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.fft import dctn

from curation.dedupe.groups import Node

HASH_SIZE = 8  # 8x8 low frequencies: 64 bits
_SHRINK = HASH_SIZE * 4  # 32x32 before the DCT, as pHash does
_NON_WORD = re.compile(r"[^\w]+")


def phash(image: bytes | Image.Image) -> int:
    """The 64-bit pHash of an encoded image (or a PIL image), as an unsigned int.

    Raises `PIL.UnidentifiedImageError` / `OSError` for bytes that do not decode.
    """
    if isinstance(image, bytes | bytearray | memoryview):
        image = Image.open(io.BytesIO(image))
        # Decode at the smallest DCT scale that still leaves 2x the 32 pixels the hash needs.
        image.draft("L", (_SHRINK * 2, _SHRINK * 2))
    grey = image.convert("L").resize((_SHRINK, _SHRINK), Image.Resampling.LANCZOS)
    coefficients = dctn(np.asarray(grey, dtype=np.float64), type=2, norm="ortho")[:HASH_SIZE, :HASH_SIZE]
    bits = (coefficients > np.median(coefficients)).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def normalize_caption(caption: str | None) -> str:
    """Case, accents, punctuation and spacing folded: captions that differ only in those are one text."""
    text = unicodedata.normalize("NFKD", caption or "").casefold()
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(_NON_WORD.sub(" ", text).split())


def caption_key(caption: str | None, min_words: int) -> str | None:
    """A hash of the normalised caption, or None when it is too short to say two pairs are one
    (generic captions such as "Flow chart." or "Representative images." recur across distinct figures)."""
    text = normalize_caption(caption)
    if len(text.split()) < min_words:
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Signature:
    """Everything dedupe compares of one pair (or evaluation item): small, so it can travel through
    shuffles where the image bytes never do."""

    node: Node
    origin: int  # which input corpus (-1: an evaluation set)
    image_sha256: str | None = None
    phash: int | None = None
    caption_key: str | None = None
    image_vector: np.ndarray | None = None
    caption_vector: np.ndarray | None = None
