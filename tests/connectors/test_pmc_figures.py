"""Choosing a figure's image file among its renditions in a real article package's media."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from connectors.jats import parse_jats
from connectors.pmc_figures import figure_candidates
from connectors.pmc_source import ArticlePackage, ArticleRef, MediaFile

REAL_IMAGE = Path(__file__).parents[2] / "sample_data" / "classification" / "ihc" / "ihc_0.jpg"

ARTICLE = b"""<article xmlns:xlink="http://www.w3.org/1999/xlink"><front><article-meta/></front><body>
<fig id="f1"><caption><p>Immunohistochemistry of the tumour margin.</p></caption>
<alternatives><graphic xlink:href="f1.tif"/><graphic xlink:href="f1-a.jpg"/><graphic xlink:href="f1-b.jpg"/>
</alternatives></fig></body></article>"""


def jpeg(side: int) -> bytes:
    with Image.open(REAL_IMAGE) as image:
        resized = image.convert("RGB").resize((side, side))
    out = io.BytesIO()
    resized.save(out, "JPEG", quality=90)
    return out.getvalue()


def package(media: dict[str, bytes]) -> ArticlePackage:
    ref = ArticleRef(pmcid="PMC1", version=None, layout="legacy", root="/src", path="/src/PMC1.tar.gz")
    return ArticlePackage(
        ref=ref, xml=ARTICLE, license="CC BY", media={k: MediaFile(data=v) for k, v in media.items()}
    )


def candidates(media: dict[str, bytes]):
    pkg = package(media)
    return list(figure_candidates(pkg, parse_jats(pkg.xml), max_image_bytes=10_000_000))


def test_unmarked_preview_loses_to_the_larger_web_rendition():
    # the markup cannot tell the two JPEGs apart; their pixels can
    (candidate,) = candidates({"f1.tif": b"II*\x00", "f1-a.jpg": jpeg(96), "f1-b.jpg": jpeg(512)})
    assert candidate.image_name == "f1-b.jpg"
    assert Image.open(io.BytesIO(candidate.image_data)).size == (512, 512)


def test_markup_choice_stands_when_it_is_the_largest_or_alone():
    (candidate,) = candidates({"f1-a.jpg": jpeg(512), "f1-b.jpg": jpeg(96)})
    assert candidate.image_name == "f1-a.jpg"
    (candidate,) = candidates({"f1-a.jpg": jpeg(64)})
    assert candidate.image_name == "f1-a.jpg"


def test_undecodable_rendition_is_passed_over():
    (candidate,) = candidates({"f1-a.jpg": b"not a jpeg", "f1-b.jpg": jpeg(128)})
    assert candidate.image_name == "f1-b.jpg"
