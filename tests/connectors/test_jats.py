"""JATS figure extraction on the real sample articles and on small hand-made cases.

Expected captions, labels and metadata of the sample articles were read off the XML by hand.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest
from lxml import etree

from connectors import jats_text
from connectors.jats import FigureGraphic, JatsError, ParsedArticle, parse_jats, resolve_href

SAMPLES = Path(__file__).parents[2] / "sample_data" / "jats"
CASES = Path(__file__).parent / "jats_cases"
REALWORLD = Path(__file__).parent / "data" / "jats_realworld"


def sample(name: str) -> ParsedArticle:
    return parse_jats((SAMPLES / name).read_bytes())


def case(name: str) -> dict[str, FigureGraphic]:
    return {figure.key: figure for figure in parse_jats((CASES / name).read_bytes()).figures}


def article(body: str, doctype: str = "") -> bytes:
    return (
        f'<?xml version="1.0"?>{doctype}<article xmlns:xlink="http://www.w3.org/1999/xlink">'
        f"<front><article-meta/></front><body>{body}</body></article>"
    ).encode()


# --- the sample articles ------------------------------------------------------------------------------


def test_pone_legacy_article():
    parsed = sample("pone.0000217.nxml")
    meta = parsed.meta
    assert (meta.pmcid, meta.pmid, meta.doi) == ("PMC1790863", "17299597", "10.1371/journal.pone.0000217")
    assert (meta.journal, meta.year) == ("PLoS ONE", 2007)
    assert meta.title == "Quantifying Organismal Complexity using a Population Genetic Approach"
    # 27 graphics, 24 of them in display formulas: only the 3 figures count
    assert [f.label for f in parsed.figures] == ["Figure 1", "Figure 2", "Figure 3"]
    assert [f.key for f in parsed.figures] == ["pone-0000217-g001", "pone-0000217-g002", "pone-0000217-g003"]
    assert [f.href for f in parsed.figures] == ["pone.0000217.g001", "pone.0000217.g002", "pone.0000217.g003"]
    assert {f.kind for f in parsed.figures} == {"figure"}
    # hair spaces around "=" become plain spaces; the subscript keeps its meaning
    assert parsed.figures[1].caption == (
        "Predicted equilibrium fitness as a function of phenotypic complexity (n_e). Results are shown for "
        "populations of size 100 (black), ten (grey), and three (white). An exponential fitness decline in "
        "which Q = 1 was used (yielding a fitness function of f(d) = exp(\u2212d)). Circles indicate the "
        "average fitness reached in the simulation model; curves indicate the analytical results."
    )
    assert parsed.figures[0].caption.startswith(
        "Fisher's geometric model in two-dimensional phenotypic space. Fitness varies along two phenotypic axes,"
    )
    assert parsed.figures[0].caption.endswith("new phenotypic combinations and fitness values (white point).")
    assert parsed.skipped == []


def test_bmc_paragraph_only_captions():
    parsed = sample("1471-2180-11-174.nxml")
    meta = parsed.meta
    assert (meta.pmcid, meta.pmid, meta.doi) == ("PMC3166277", "21810267", "10.1186/1471-2180-11-174")
    assert (meta.journal, meta.year) == ("BMC Microbiology", 2011)
    assert meta.title == "Factors influencing lysis time stochasticity in bacteriophage \u03bb"
    # three table-wraps hold real tables only: no records for them
    assert [f.label for f in parsed.figures] == ["Figure 1", "Figure 2", "Figure 3", "Figure 4"]
    assert [f.href for f in parsed.figures] == [f"1471-2180-11-174-{n}" for n in (1, 2, 3, 4)]
    assert parsed.figures[0].caption == (
        "Schematic presentation of two models of holin hole formation. Holin monomers (shaded circles) are "
        "produced in the cytoplasm, and then transported to the cell membrane (a top-down view of the cell "
        "membrane thereafter) where they dimerize. A previous model (open arrows) [28,39] hypothesized that "
        'the growth of the holin aggregates ("rafts") to a critical size that is responsible for the collapse '
        "of the proton motive force (pmf), thus resulting in hole formation. The current model [40] (filled "
        "arrows) suggests that the holin proteins are mostly in a mobile state, then quite suddenly, aggregates "
        "are formed, leading to the formation of holin holes. Addition of the energy poison KCN halts further "
        "holin production and abolishes the pmf. This figure is adapted from Wang et al. [28] and White et al. [40]."
    )
    # italics and subscripts with trailing spaces inside them; scripts keep their meaning (t_L, x², t_{KCN})
    assert parsed.figures[3].caption == (
        "Effects of t_{KCN} (timing of KCN addition). (A) On time delay t_L - t_{KCN}. The solid curve shows the "
        "quadratic fit of y = 54.52 - 1.09x + 0.02(x - 36.57)\u00b2. Error bars indicate the associated SDs. As "
        "an example, when t_{KCN} = 45 min, the observed t_L is 50.11 min, thus the time delay is t_L - t_{KCN} = "
        "5.11 min. (B) On lysis time SD (closed circles) and CV (closed triangles). Solid curve shows the "
        "quadratic fit of SD against t_{KCN} (y = 13.24 - 0.28x + 0.01(x - 36.57)\u00b2)."
    )
    assert any(
        m.startswith("The effects of t_{KCN} on lysis time SDs and CVs are shown in Figure 4B.")
        for m in parsed.figures[3].mentions
    )


def test_ehp_floats_group_and_mentions():
    parsed = sample("ehp-116-1694.nxml")
    meta = parsed.meta
    assert (meta.pmcid, meta.pmid, meta.doi) == ("PMC2599765", "19079722", "10.1289/ehp.11570")
    assert (meta.journal, meta.year) == ("Environmental Health Perspectives", 2008)
    assert meta.title == (
        "Dietary Exposure to 2,2\u2032,4,4\u2032-Tetrabromodiphenyl Ether (PBDE-47) Alters Thyroid Status and "
        "Thyroid Hormone\u2013Regulated Gene Transcription in the Pituitary and Brain"
    )
    assert meta.keywords[:3] == [
        "basic transcription element-binding protein",
        "brain",
        "endocrine disruption",
    ]
    assert len(meta.keywords) == 9
    assert [f.label for f in parsed.figures] == ["Figure 1", "Figure 2", "Figure 3"]
    assert [f.href for f in parsed.figures] == ["ehp-116-1694f1", "ehp-116-1694f2", "ehp-116-1694f3"]
    assert parsed.figures[0].caption == (
        "Exposure to PBDE-47 depressed circulating concentrations of total T\u2084 in males and females (A), but "
        "had no effect on total T\u2083 in males (B). *p < 0.05 compared with control."
    )
    # Figure 3 is cited three times in two paragraphs: each paragraph once, in document order
    mentions = parsed.figures[2].mentions
    assert len(mentions) == 2
    assert mentions[0].startswith(
        "Gene transcripts for TR\u03b1 were elevated 37% in the brain of females (p = 0.002)"
    )
    assert mentions[1].startswith("Dietary PBDE-47 exposure also altered mRNA abundance for the TH-regulated")
    assert (
        parsed.figures[0].mentions[0].startswith("We observed decreased plasma T\u2084 levels in both sexes")
    )


ELIFE_LABELS = [
    "Figure 1",
    "Figure 1\u2014figure supplement 1",
    "Figure 2",
    "Figure 3",
    *[f"Figure 3\u2014figure supplement {n}" for n in range(1, 16)],
    "Figure 4",
    *[f"Figure 4\u2014figure supplement {n}" for n in range(1, 4)],
]


def test_elife_fig_groups_and_supplements():
    parsed = sample("elife00013.xml")
    meta = parsed.meta
    assert (meta.pmcid, meta.pmid, meta.doi) == (None, None, "10.7554/eLife.00013")
    assert (meta.journal, meta.year) == ("eLife", 2012)
    assert meta.title == (
        "A bacterial sulfonolipid triggers multicellular development in the closest living relatives of animals"
    )
    assert meta.keywords[:2] == ["Salpingoeca rosetta", "Algoriphagus"]
    assert [f.label for f in parsed.figures] == ELIFE_LABELS
    by_key = {f.key: f for f in parsed.figures}
    assert by_key["fig3s15"].href == "elife00013fs016"
    # the "DOI: http://dx.doi.org/..." paragraph is not caption text
    assert by_key["fig1"].caption == (
        "Rosette colony development in S. rosetta is regulated by A. machipongonensis. (A) The original culture "
        "of S. rosetta, ATCC 50818, contains diverse co-isolated environmental bacteria and forms rosette "
        "colonies (arrowheads) rarely. (B) Treatment of ATCC50818 with a cocktail of antibiotics reduced the "
        "bacterial diversity and yielded an S. rosetta culture line, RCA, in which rosette colonies never "
        "formed. (Representative single cells indicated by arrows.) (C) Addition of A. machipongonensis to RCA "
        "cultures was sufficient to induce rosette development. Scale bar, 2 \u03bcm."
    )
    assert by_key["fig4s3"].caption == (
        "Co-injection of concentrated conditioned medium with purified RIF-1. The peak of the RIF-1 in the "
        "conditioned medium was enhanced after the sample was spiked with purified RIF-1 (bottom panel)."
    )
    assert not any("DOI" in f.caption or "dx.doi.org" in f.caption for f in parsed.figures)
    # the fig-groups have no caption of their own
    assert {f.group_caption for f in parsed.figures} == {None}
    # the paragraph that holds the fig-group cites it; its text leaves the figures out
    assert by_key["fig1"].mentions
    assert not any("regulated by A. machipongonensis" in m for m in by_key["fig1"].mentions)
    # "Figure 3—figure supplements 3–15" is one xref whose rid lists thirteen ids
    assert all(by_key[f"fig3s{n}"].mentions for n in range(3, 16))


def test_current_pmc_shape_with_alternatives():
    parsed = sample("PMC12755737.xml")
    meta = parsed.meta
    assert (meta.pmcid, meta.pmid, meta.doi) == ("PMC12755737", "41474770", "10.1371/journal.pone.0338891")
    assert (meta.journal, meta.year) == ("PLOS One", 2025)
    assert meta.title == "Candidate orphan genes: Reassessing uniqueness"
    assert [f.label for f in parsed.figures] == ["Fig 1", "Fig 2", "Fig 3", "Fig 4"]
    # the JPG (content-type="image"), never the GIF thumbnail beside it
    assert [f.href for f in parsed.figures] == [f"pone.0338891.g00{n}.jpg" for n in (1, 2, 3, 4)]
    assert parsed.figures[2].caption == (
        "A Higher Number of Sequenced Genomes Generally Leads to a Reduction in Orphan Genes. The left panel "
        "demonstrates the number of orphan genes in 2023 and 2025, alongside the number of sequenced genomes "
        "available for each bacterial species in NCBI (S1 Table, individual data points without log "
        "transformation). Labels: xx: data points corresponding to a single orphan gene (Log 1 = 0); x: data "
        "point corresponding to zero orphan genes (Log 0 = undefined). The 10 bacterial species studied were "
        "divided into 2 groups and arranged in descending order based on the number of genomes available "
        "(NCBI). The right panel compares the top five High Genome Count species to the bottom five Low Genome "
        "Count species using a violin plot."
    )
    # supplementary-material captions elsewhere in the article never leak into figure captions
    assert not any("(XLSX)" in f.caption or "(DOCX)" in f.caption for f in parsed.figures)


# --- failures seen in peer parsers: one test each ---------------------------------------------------


def test_figure_without_caption_does_not_inherit_the_previous_caption():
    figures = case("peer_failures.xml")
    assert figures["f1"].caption == "Chest radiograph. Right lower lobe opacity."
    assert figures["f2"].caption == ""
    assert figures["f2"].label == "Figure 2"


def test_href_comes_from_the_graphics_xlink_href_only():
    assert case("peer_failures.xml")["f3"].href == "f3.jpg"


def test_graphic_inside_alternatives_is_found():
    assert case("peer_failures.xml")["f4"].href == "f4.jpg"


def test_caption_is_title_and_every_paragraph():
    assert case("peer_failures.xml")["f5"].caption == (
        "Histology. First paragraph ends here. Second in italic and bold. Third."
    )


def test_words_are_neither_glued_nor_split():
    assert case("peer_failures.xml")["f6"].caption == (
        "Ultrasound of the liver end. Next sentence with p_R and 10\u207b\u00b3 M. Items: (a) one two"
    )


def test_no_figure_dropped_for_its_href_extension():
    figures = case("peer_failures.xml")
    assert [figures[k].href for k in ("f7", "f8", "f9")] == ["article.g007", "f8.TIF", "f9.eps"]
    assert len(figures) == 9


# --- where figures sit ----------------------------------------------------------------------------


def test_figures_everywhere_in_document_order():
    figures = case("placements.xml")
    assert list(figures) == ["body1", "box1", "grp1a", "grp1b", "app1fig1", "float1", "sa1fig1"]
    assert figures["app1fig1"].caption == "In an appendix."
    assert figures["box1"].caption == "In a box."
    assert figures["sa1fig1"].mentions == ["We added Author response image 1."]
    assert figures["app1fig1"].mentions == ["See Appendix 1 Figure 1."]


def test_fig_group_caption_is_context_not_caption():
    figures = case("placements.xml")
    assert figures["grp1a"].caption == "Panel A."
    assert figures["grp1a"].group_caption == "Group title. Shared context of panels."
    assert figures["grp1b"].group_caption == "Group title. Shared context of panels."
    assert figures["body1"].group_caption is None
    # an xref to the group cites each of its figures
    assert figures["grp1b"].mentions == ["Both panels: Figure 2."]


def test_nested_supplementary_figure_keeps_its_own_caption_and_graphic():
    figures = case("elife_nested.xml")
    parent, supplement = figures["fig1"], figures["fig1s1"]
    assert parent.caption == "Parent title. Parent legend."  # no source data, DOI, or supplement text
    assert parent.href == "elife-99999-fig1-v1.tif"
    assert parent.label == "Figure 1"
    assert supplement.caption == "Supplement title. Supplement legend cites Figure 1."
    assert supplement.href == "elife-99999-fig1-figsupp1-v1.tif"
    assert supplement.label == "Figure 1\u2014figure supplement 1"
    # a citation inside another figure's caption is not a mention
    assert parent.mentions == ["Parent (Figure 1) and supplement (Figure 1\u2014figure supplement 1)."]


def test_parent_without_caption_does_not_take_its_supplements():
    figures = case("elife_nested.xml")
    assert (figures["fig2"].caption, figures["fig2"].href) == ("", "elife-99999-fig2-v1.tif")
    assert figures["fig2s1"].caption == "Only the supplement has a caption."
    assert list(figures) == ["fig1", "fig1s1", "fig2", "fig2s1"]


# --- graphics -------------------------------------------------------------------------------------


def test_rid_lists_and_xref_inside_bold():
    figures = case("graphics.xml")
    cited = "Cited in bold: Figures 1 and 2, and a table Table 1."
    assert figures["thumbfirst"].mentions == [cited]
    assert figures["multi/a"].mentions == [cited]
    assert figures["t1"].mentions == [cited]  # ref-type="table" inside italic


def test_alternatives_with_thumbnail_first_choose_the_full_image():
    assert case("graphics.xml")["thumbfirst"].href == "thumbfirst.jpg"


def test_alternatives_without_roles_choose_the_format_pillow_reads_best():
    xml = article(
        '<fig id="a"><alternatives><graphic xlink:href="a.eps"/><graphic xlink:href="a.tif"/>'
        '<graphic xlink:href="a.jpg"/></alternatives></fig>'
        '<fig id="b"><alternatives><graphic xlink:href="b.svg"/><graphic xlink:href="b.gif"/></alternatives></fig>'
    )
    assert [(f.key, f.href) for f in parse_jats(xml).figures] == [("a", "a.jpg"), ("b", "b.gif")]


def test_several_graphics_give_one_record_each_and_thumbnails_none():
    figures = case("graphics.xml")
    assert (figures["multi/a"].href, figures["multi/b"].href) == ("multi-left.jpg", "multi-right.jpg")
    assert figures["multi/a"].caption == figures["multi/b"].caption == "Two panels."
    assert "multi" not in figures


def test_formula_and_inline_graphics_are_not_figures():
    parsed = parse_jats((CASES / "graphics.xml").read_bytes())
    hrefs = {f.href for f in parsed.figures}
    assert not hrefs & {
        "inline1.gif",
        "formula1.gif",
        "if1.gif",
        "if2.gif",
        "df1.gif",
        "cs1.gif",
        "cellicon.gif",
    }
    assert {f.href for f in parsed.figures if f.key == "withformula"} == {"withformula.jpg"}


def test_tables_delivered_as_images():
    figures = case("graphics.xml")
    assert figures["t1"].kind == "table"
    assert (figures["t1"].label, figures["t1"].caption) == ("Table 1", "Baseline characteristics.")
    assert figures["t3"].href == "t3.jpg"
    assert "t2" not in figures  # a real table (an image in a cell does not make it one)
    assert not {k for k, f in figures.items() if f.href == "cellimage.jpg"}


def test_keys_without_id_and_with_duplicate_ids():
    figures = case("graphics.xml")
    assert figures["fig-5"].href == "noid.jpg"  # fifth <fig> in document order
    assert (figures["dup"].href, figures["dup-2"].href) == ("dup1.jpg", "dup2.jpg")


def test_figure_without_graphic_is_reported_not_dropped_silently():
    parsed = parse_jats((CASES / "graphics.xml").read_bytes())
    assert [(s.key, s.kind, s.reason) for s in parsed.skipped] == [("video", "figure", "no_graphic")]


def test_parsing_is_deterministic():
    data = (SAMPLES / "elife00013.xml").read_bytes()
    assert parse_jats(data) == parse_jats(data)


# --- namespaces and processing instructions -------------------------------------------------------


def test_xlink_declared_per_element_other_prefix_and_processing_instructions():
    figures = case("namespaces.xml")
    assert figures["perelement"].href == "perelement.jpg"
    assert figures["otherprefix"].href == "otherprefix.jpg"
    assert figures["otherprefix"].caption == "Other prefix."


def test_undeclared_xlink_prefix_is_tolerated():
    xml = b'<article><body><fig id="f1"><caption><p>C.</p></caption><graphic xlink:title="t" xlink:href="f1.jpg"/></fig></body></article>'
    assert [(f.key, f.href) for f in parse_jats(xml).figures] == [("f1", "f1.jpg")]


def test_article_in_a_default_namespace_and_in_a_pmc_articleset():
    namespaced = (
        b'<article xmlns="http://jats.nlm.nih.gov" xmlns:xlink="http://www.w3.org/1999/xlink">'
        b'<body><fig id="f1"><caption><p>C.</p></caption><graphic xlink:href="f1.jpg"/></fig></body></article>'
    )
    assert [f.caption for f in parse_jats(namespaced).figures] == ["C."]
    wrapped = (
        b"<pmc-articleset>"
        + article('<fig id="f1"><graphic xlink:href="f1.jpg"/></fig>')[21:]
        + b"</pmc-articleset>"
    )
    assert [f.href for f in parse_jats(wrapped).figures] == ["f1.jpg"]


def test_undeclared_named_entity_keeps_its_character():
    xml = article(
        '<fig id="f1"><caption><p>a&nbsp;b &mu;m</p></caption><graphic xlink:href="f1.jpg"/></fig>',
        doctype='<!DOCTYPE article PUBLIC "-//NLM//DTD JATS (Z39.96)//EN" "JATS-archivearticle1.dtd">',
    )
    assert parse_jats(xml).figures[0].caption == "a b \u03bcm"


# --- metadata -------------------------------------------------------------------------------------


def test_year_prefers_electronic_then_print_then_collection():
    def year(dates: str) -> int | None:
        xml = f"<article><front><article-meta>{dates}</article-meta></front></article>".encode()
        return parse_jats(xml).meta.year

    epub = '<pub-date pub-type="epub"><year>2008</year></pub-date>'
    ppub = '<pub-date pub-type="ppub"><year>2009</year></pub-date>'
    collection = '<pub-date pub-type="collection"><year>2010</year></pub-date>'
    release = '<pub-date pub-type="pmc-release"><year>2011</year></pub-date>'
    assert year(ppub + collection + epub) == 2008
    assert year(collection + ppub) == 2009
    assert year(release + collection) == 2010
    assert (
        year(
            '<pub-date date-type="pub" publication-format="print"><year>2013</year></pub-date>'
            '<pub-date date-type="pub" publication-format="electronic"><year>2012</year></pub-date>'
        )
        == 2012
    )
    assert year("") is None


def test_pmcid_from_legacy_and_current_article_ids():
    def pmcid(ids: str) -> str | None:
        return parse_jats(
            f"<article><front><article-meta>{ids}</article-meta></front></article>".encode()
        ).meta.pmcid

    assert pmcid('<article-id pub-id-type="pmc">1790863</article-id>') == "PMC1790863"
    assert pmcid('<article-id pub-id-type="pmcid">PMC12755737</article-id>') == "PMC12755737"
    assert pmcid('<article-id pub-id-type="pmc">PMC42</article-id>') == "PMC42"
    assert pmcid('<article-id pub-id-type="doi">10.1/x</article-id>') is None


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "xml",
    [b"", b"  \n", b"<article><body><p>open</body></article>", b"<article>&undefined;</article>", b"not xml"],
)
def test_malformed(xml):
    with pytest.raises(JatsError) as info:
        parse_jats(xml)
    assert info.value.reason == "xml_malformed"
    assert info.value.detail


def test_not_jats():
    for xml in (b"<html><body/></html>", b"<pmc-articleset><article/><article/></pmc-articleset>"):
        with pytest.raises(JatsError) as info:
            parse_jats(xml)
        assert info.value.reason == "xml_not_jats"


def test_text_instead_of_bytes_is_a_programming_error():
    with pytest.raises(TypeError):
        parse_jats("<article/>")  # type: ignore[arg-type]


BILLION_LAUGHS = (
    '<!DOCTYPE article [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1 if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + "]>"
)


@pytest.mark.parametrize(
    "doctype, body",
    [
        (BILLION_LAUGHS, "<p>&lol9;</p>"),
        ('<!DOCTYPE article [<!ENTITY journal "Internal Entity Journal">]>', "<p>&journal;</p>"),
        ('<!DOCTYPE article [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', "<p>&xxe;</p>"),
        ('<!DOCTYPE article [<!ENTITY % pe SYSTEM "file:///etc/passwd"> %pe;]>', "<p>x</p>"),
    ],
    ids=["billion-laughs", "internal-entity", "external-entity", "parameter-entity"],
)
def test_entity_declarations_are_forbidden(doctype, body):
    with pytest.raises(JatsError) as info:
        parse_jats(article(body, doctype=doctype))
    assert info.value.reason == "xml_forbidden"
    assert "root:" not in str(info.value)


def test_resource_limits_are_forbidden():
    too_deep = b"<article>" + b"<sec>" * 300 + b"</sec>" * 300 + b"</article>"
    with pytest.raises(JatsError) as info:
        parse_jats(too_deep)
    assert info.value.reason == "xml_forbidden"


def _opens(xml_with_path: str, tmp_path: Path) -> tuple[bool, object]:
    """Whether parsing the document opens the file it references, proved with a named pipe.

    Opening a FIFO for reading blocks until a writer comes; a non-blocking open for writing succeeds
    only while a reader is waiting. So the parse runs in a thread, and the probe both detects and
    releases a reader.
    """
    fifo = tmp_path / "secret"
    os.mkfifo(fifo)
    xml = xml_with_path.replace("PATH", f"file://{fifo}").encode()
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = parse_jats(xml)
        except JatsError as exc:
            outcome["result"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(1.0)
    opened = False
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        assert exc.errno == errno.ENXIO
    else:
        opened = True
        os.write(fd, b"root:x:0:0")
        os.close(fd)
    worker.join(5.0)
    return opened, outcome.get("result")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")
@pytest.mark.parametrize(
    "document",
    [
        '<!DOCTYPE article [<!ENTITY xxe SYSTEM "PATH">]><article><p>&xxe;</p></article>',
        '<!DOCTYPE article [<!ENTITY % pe SYSTEM "PATH"> %pe;]><article><p>x</p></article>',
        '<!DOCTYPE article SYSTEM "PATH"><article><p>x</p></article>',
    ],
    ids=["external-entity", "parameter-entity", "external-dtd"],
)
def test_referenced_files_are_never_opened(document, tmp_path):
    opened, result = _opens(document, tmp_path)
    assert not opened
    if "ENTITY" in document:
        assert isinstance(result, JatsError) and result.reason == "xml_forbidden"
    else:  # a DTD reference is normal in JATS; it is simply not loaded
        assert isinstance(result, ParsedArticle)


# --- resolve_href ---------------------------------------------------------------------------------


def test_resolve_extensionless_href():
    assert resolve_href("x", ["x.jpg"]) == "x.jpg"
    assert resolve_href("pone.0000217.g001", ["pone.0000217.g001.gif", "pone.0000217.g001.jpg"]) == (
        "pone.0000217.g001.jpg"
    )


def test_resolve_ignores_case():
    assert resolve_href("x.tif", ["X.TIF"]) == "X.TIF"
    assert resolve_href("x.jpg", ["X.JPG", "x.jpg"]) == "x.jpg"


def test_resolve_other_extension():
    # decision: the XML naming ".gif" while the package holds only ".jpg" is the same image
    assert resolve_href("x.gif", ["x.jpg"]) == "x.jpg"
    # and GIF, a palette-reduced preview in PMC packages, loses to a JPEG of the same name
    assert resolve_href("x.gif", ["x.gif", "x.jpg"]) == "x.jpg"
    assert resolve_href("x.gif", ["x.gif"]) == "x.gif"
    # between good raster formats the href's own extension wins
    assert resolve_href("x.tif", ["x.jpg", "x.tif"]) == "x.tif"
    assert resolve_href("x", ["x.tif", "x.png", "x.jpg"]) == "x.jpg"


def test_resolve_prefers_full_image_over_thumbnail():
    assert resolve_href("x", ["x.thumb.jpg", "x.jpg"]) == "x.jpg"
    assert resolve_href("x.jpg", ["x_thumb.jpg", "x.gif"]) == "x.gif"
    assert resolve_href("x.jpg", ["x_thumb.jpg"]) == "x_thumb.jpg"  # better than nothing; size filters decide


def test_resolve_misses_and_other_formats():
    assert resolve_href("x.jpg", ["y.jpg", "x1.jpg", "xx.jpg"]) is None
    assert resolve_href("x", []) is None
    assert resolve_href("", ["x.jpg"]) is None
    assert resolve_href("f9.eps", ["F9.EPS", "f9.pdf"]) == "F9.EPS"
    assert resolve_href("figures/x.jpg", iter(["x.jpg"])) == "x.jpg"


# --- issue 10's long tail (hand-made after real OUP, Springer, IOP and SciELO markup) -------------------


def test_formula_given_only_as_tex_keeps_its_tex_body():
    figures = case("long_tail.xml")
    assert figures["oup1"].caption == "Correlations between \\alpha and \\beta_{1} with 95% CI."
    # PMC's \documentclass ... \begin{document}$$...$$\end{document} wrapper is not the formula
    assert figures["spr1"].caption == "Fit of R^2 = 0.93 to the data."
    # IOP hides the TeX in a <?CDATA ...?> processing instruction
    assert figures["iop1"].caption == "Spectra at T = 300\\,\\mathrm{K} for sample A."


def test_formula_with_mathml_and_tex_is_written_once():
    assert case("long_tail.xml")["both"].caption == "Growth as x\u00b2 over time."


def test_superscripts_and_subscripts_keep_their_meaning():
    assert case("long_tail.xml")["f7"].caption == (
        "Detection down to 10\u2077 fM (0.5 mg L\u207b\u00b9) of CO\u2082 and Ca\u00b2\u207a, the 5th day, "
        "V_{max} and footnote^a."
    )


def test_sized_preview_is_never_the_figure_image():
    figure = case("long_tail.xml")["f6"]
    # SciELO: the .tif original, a "scielo-267x140" preview and the full-size web PNG
    assert figure.href == "1518-8345-rlae-29-e3285-gf1.png"
    assert figure.alternatives == ["1518-8345-rlae-29-e3285-gf1.tif", "1518-8345-rlae-29-e3285-gf1.jpg"]


def test_print_and_online_renditions_are_one_figure():
    figures = case("long_tail.xml")
    assert figures["iop1"].href == "jpcm123456f03_online.jpg"
    assert figures["iop1"].alternatives == ["jpcm123456f03_pr.eps"]
    assert figures["twoformats"].href == "f4.jpg"
    assert "iop1/a" not in figures and "twoformats/a" not in figures


def test_empty_href_alternative_loses_to_the_real_one():
    assert case("long_tail.xml")["f8"].href == "f8.png"


def test_mathml_reads_as_its_tokens_without_the_layout_whitespace():
    """PLOS and APS indent their MathML; that whitespace is layout (MathML 3, 2.1.7), not text."""
    math = etree.fromstring(
        b'<mml:math xmlns:mml="http://www.w3.org/1998/Math/MathML"><mml:mrow>\n'
        b"  <mml:msubsup><mml:mi>\xce\xb1</mml:mi> <mml:mi>a</mml:mi> <mml:mi>i</mml:mi></mml:msubsup>\n"
        b"  <mml:mo>=</mml:mo> <mml:mn>0</mml:mn> <mml:mo>.</mml:mo> <mml:mn>1</mml:mn>\n"
        b"  <mml:mn>1.0</mml:mn><mml:mtext>\xe2\x80\x89</mml:mtext><mml:mi>meV</mml:mi>\n"
        b"  <mml:annotation encoding='TeX'>\\alpha_a^i</mml:annotation></mml:mrow></mml:math>"
    )
    assert jats_text.math_text(math) == "\u03b1_a^i=0.11.0\u2009meV"  # the thin space is text, kept
    flat = etree.fromstring(  # no scripts: the one-pass path
        b'<mml:math xmlns:mml="http://www.w3.org/1998/Math/MathML">\n <mml:mi> p </mml:mi>\n <mml:mo>&lt;</mml:mo>'
        b" <mml:mn>0</mml:mn> <mml:mo>.</mml:mo> <mml:mn>05</mml:mn>\n</mml:math>"
    )
    assert jats_text.math_text(flat) == "p<0.05"


def test_indented_mathml_in_real_captions():
    article = parse_jats((REALWORLD / "plos" / "journal.pone.0118238.xml").read_bytes())
    caption = next(f.caption for f in article.figures if f.key == "pone.0118238.g005")
    assert "\u03b1_a^i=0.1" in caption and "0 . 1" not in caption
    aps = parse_jats((REALWORLD / "aps" / "PhysRevX.4.021018.xml").read_bytes())
    assert "\u0394_p=1.0 meV" in next(f.caption for f in aps.figures if f.key == "f4")


def test_en_dash_after_a_digit_in_a_script_is_a_range_not_a_minus():
    assert jats_text.script_text("1\u20132", "_") == "_{1\u20132}"  # dental notation: incisors 1 to 2
    assert jats_text.script_text("\u20131", "^") == "\u207b\u00b9"  # L<sup>–1</sup>: a sign
    article = parse_jats((REALWORLD / "plos" / "journal.pone.0005723.xml").read_bytes())
    caption = next(f.caption for f in article.figures if f.key == "pone-0005723-g003")
    assert "I_{1\u20132}" in caption and "\u208b" not in caption
