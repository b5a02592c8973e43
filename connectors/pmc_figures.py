"""From an article package to figure candidates, and from a candidate to a pair record.

Two steps because they scale differently: the first is I/O bound (fetch, parse, read media), the
second CPU bound (decode, resize, encode). `ingest pmc` runs them fused, without a shuffle of the image
bytes between them: articles are the unit of parallel work (see pipelines/pmc_ingest.py).
Every figure ends as a candidate or a reject; every candidate as a pair or a reject.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

from connectors import fs
from connectors.images import EncodedImage, ImageError, ImageOptions, normalize_image_bytes
from connectors.jats import ArticleMeta, FigureGraphic, JatsError, ParsedArticle, parse_jats, resolve_href
from connectors.licenses import license_group
from connectors.pmc_source import ArticlePackage, ArticleRef, PackageError, SelectionPolicy, open_article
from connectors.splits import SplitRatios, assign_split
from curation.captions import caption_reject_reason, clean_caption
from schemas import PairRecord, RejectRecord

SOURCE = "pmc"
_WEB_FORMATS = (".jpg", ".jpeg", ".png", ".gif")

# What a failed media read means for the figure that needed it.
_MEDIA_REASONS = {
    "file_missing": "image_missing",
    "file_too_large": "image_too_large",
    "md5_mismatch": "md5_mismatch",
    "fetch_failed": "image_read",
}


@dataclass
class FigureCandidate:
    """A figure with its raw image bytes, before decoding."""

    id: str
    pmcid: str
    figure: FigureGraphic
    meta: ArticleMeta
    license: str | None
    image_name: str
    image_data: bytes
    source_uri: str


def article_key(ref: ArticleRef, versioned: bool = False) -> str:
    """The article's part of record ids: `PMC123`, or `PMC123.2` when several versions of an article are
    kept (`--all-versions`), so that ids stay unique."""
    return f"{ref.pmcid}.{ref.version}" if versioned and ref.version is not None else ref.pmcid


def article_id(key: str) -> str:
    return f"{SOURCE}/{key}"


def figure_id(key: str, figure: FigureGraphic) -> str:
    return f"{SOURCE}/{key}/{figure.key}"


def open_and_parse(
    ref: ArticleRef, policy: SelectionPolicy, versioned: bool = False
) -> tuple[ArticlePackage, ParsedArticle] | RejectRecord:
    """The package and its parsed XML, or the article's reject."""
    try:
        package = open_article(ref, policy)
        parsed = parse_jats(package.xml)
    except (PackageError, JatsError) as exc:
        return RejectRecord(
            id=article_id(article_key(ref, versioned)),
            stage="articles",
            reason=exc.reason,
            detail=exc.detail,
            source=SOURCE,
            source_uri=ref.path,
        )
    # PMC's metadata is authoritative for identity; the XML fills what the metadata lacks.
    parsed.meta.pmcid = ref.pmcid
    parsed.meta.pmid = package.pmid or parsed.meta.pmid
    parsed.meta.doi = package.doi or parsed.meta.doi
    return package, parsed


def figure_candidates(
    package: ArticlePackage, parsed: ParsedArticle, max_image_bytes: int, versioned: bool = False
) -> Iterator[FigureCandidate | RejectRecord]:
    pmcid = package.ref.pmcid
    key = article_key(package.ref, versioned)
    names = package.media_names
    for skipped in parsed.skipped:  # figures and tables with no image to pair (a video-only figure, say)
        yield RejectRecord(
            id=f"{SOURCE}/{key}/{skipped.key}",
            stage="figures",
            reason=skipped.reason,
            detail=skipped.detail,
            source=SOURCE,
            source_uri=package.ref.path,
        )
    for figure in parsed.figures:
        fid = figure_id(key, figure)
        name, data = _rendition(figure, names, package, max_image_bytes)
        if name is None:
            yield RejectRecord(
                id=fid,
                stage="figures",
                reason="image_missing",
                detail=f"no file for href {figure.href!r} among {len(names)} media files",
                source=SOURCE,
                source_uri=package.ref.path,
            )
            continue
        try:
            data = data if data is not None else package.read_media(name, max_bytes=max_image_bytes)
        except fs.FetchError as exc:
            yield RejectRecord(
                id=fid,
                stage="figures",
                reason=_MEDIA_REASONS.get(exc.reason, exc.reason),
                detail=exc.detail,
                source=SOURCE,
                source_uri=package.ref.path,
            )
            continue
        yield FigureCandidate(
            id=fid,
            pmcid=pmcid,
            figure=figure,
            meta=parsed.meta,
            license=package.license,
            image_name=name,
            image_data=data,
            source_uri=package.ref.path,
        )


def _rendition(
    figure: FigureGraphic, names: list[str], package: ArticlePackage, max_image_bytes: int
) -> tuple[str | None, bytes | None]:
    """The package file of the figure's image, and its bytes when choosing needed them.

    The markup's choice stands (connectors.jats ranks renditions by their attributes and formats),
    except that among renditions in web formats present in the package the one with the most pixels
    wins: a preview marked by nothing but its size loses to the full image.
    """
    chosen = resolve_href(figure.href, names)
    if chosen is None or not figure.alternatives or not chosen.lower().endswith(_WEB_FORMATS):
        return chosen, None
    files = [chosen] + [resolve_href(href, names) for href in figure.alternatives]
    web = [name for name in dict.fromkeys(files) if name is not None and name.lower().endswith(_WEB_FORMATS)]
    if len(web) < 2:
        return chosen, None
    best: tuple[int, str, bytes] | None = None
    for name in web:
        try:
            data = package.read_media(name, max_bytes=max_image_bytes)
            with Image.open(io.BytesIO(data)) as image:  # reads the header only
                pixels = image.width * image.height
        except (fs.FetchError, OSError, Image.DecompressionBombError):
            continue  # the chosen file's own failure is reported when it is read again
        if best is None or pixels > best[0]:
            best = (pixels, name, data)
    return (best[1], best[2]) if best is not None else (chosen, None)


def build_pair(
    candidate: FigureCandidate, options: ImageOptions, ratios: SplitRatios
) -> PairRecord | RejectRecord:
    caption = clean_caption(candidate.figure.caption)
    reason = caption_reject_reason(caption)
    if reason is not None:
        return _reject(candidate, reason, "the figure has no caption text")
    try:
        # Published figures: a file that already fits is stored as it came (no second JPEG generation, no
        # encoding cost); its metadata is the publisher's, public like the article.
        image: EncodedImage = normalize_image_bytes(candidate.image_data, options, keep_fitting_source=True)
    except ImageError as exc:
        return _reject(candidate, exc.reason, f"{candidate.image_name}: {exc.detail}")
    meta, figure = candidate.meta, candidate.figure
    stem = figure.key.replace("/", "_")
    return PairRecord(
        id=candidate.id,
        source=SOURCE,
        kind=figure.kind,
        image_bytes=image.data,
        image_path=f"{candidate.pmcid}_{stem}.{image.extension}",
        image_sha256=image.sha256,
        image_stored=image.stored,
        width=image.width,
        height=image.height,
        caption=caption,
        figure_label=figure.label,
        group_caption=clean_caption(figure.group_caption) or None,
        mentions=[clean_caption(m) for m in figure.mentions if m.strip()],
        group_id=candidate.pmcid,
        pmcid=candidate.pmcid,
        pmid=meta.pmid,
        doi=meta.doi,
        journal=meta.journal,
        year=meta.year,
        title=clean_caption(meta.title) or None,
        keywords=list(meta.keywords),
        license=candidate.license,
        license_group=license_group(candidate.license),
        split=assign_split(candidate.pmcid, ratios),
        source_uri=candidate.source_uri,
        source_member=candidate.image_name,
        text_model="jats",
    )


def _reject(candidate: FigureCandidate, reason: str, detail: str) -> RejectRecord:
    return RejectRecord(
        id=candidate.id,
        stage="figures",
        reason=reason,
        detail=detail,
        source=SOURCE,
        source_uri=candidate.source_uri,
    )
