"""`medcorpus ingest pmc`: PubMed Central Open Access articles to figure-caption pairs, on Beam.

Stages, each counted (see pipelines.accounting):
  requested  PMCIDs from --pmcids: found or rejected `pmcid_not_found`
  listing    article versions listed: selected, or removed as superseded / not requested / over --limit
  articles   fetch metadata + XML, policy checks, parse: passed on, or rejected
  figures    resolve and read each figure's image, clean its caption, decode and re-encode: a pair, or rejected
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import apache_beam as beam

from connectors.corpus import RunInfo
from connectors.images import ImageOptions
from connectors.pmc_figures import FigureCandidate, build_pair, figure_candidates, open_and_parse
from connectors.pmc_source import ArticleRef, SelectionPolicy, listing_units, refs_in_unit
from connectors.splits import SplitRatios
from pipelines.accounting import REJECTS, CountAs, Progress, count, counted_reject, reject
from pipelines.corpus_output import WriteCorpus
from schemas import RejectRecord

MAX_IMAGE_BYTES = 256 * 1024**2


@dataclass
class PmcIngestOptions:
    source: str
    out: str
    license: str = "all"
    pmcids: list[str] | None = None
    limit: int | None = None
    listing: str = "auto"  # cloud sources: "auto" | "inventory" | "prefix"
    all_versions: bool = False
    include_retracted: bool = False
    image: ImageOptions = field(default_factory=ImageOptions)
    splits: SplitRatios = field(default_factory=SplitRatios)

    def describe(self) -> dict:
        described = asdict(self)
        described["pmcids"] = len(self.pmcids) if self.pmcids is not None else None
        return described


class SelectVersions(beam.DoFn):
    """Per PMCID: the newest version (or all), counting the rest as superseded."""

    def __init__(self, all_versions: bool):
        self.all_versions = all_versions

    def process(self, item: tuple[str, Iterable[ArticleRef]]):
        _, refs = item
        ordered = sorted(refs, key=lambda r: (r.version or 0, r.path), reverse=True)
        keep = ordered if self.all_versions else ordered[:1]
        count("listing", "removed.superseded_version", len(ordered) - len(keep))
        yield from keep


def _listing_order(ref: ArticleRef) -> tuple[int, str, int]:
    """PMCIDs in numeric order (PMC99 before PMC100), newest version first."""
    digits = ref.pmcid.removeprefix("PMC")
    return (int(digits) if digits.isdigit() else 0, ref.pmcid, -(ref.version or 0))


class ExtractFigures(beam.DoFn):
    """An article reference to figure candidates (main output) and rejects."""

    def __init__(self, policy: SelectionPolicy, versioned: bool = False):
        self.policy = policy
        self.versioned = versioned  # several versions of an article are kept: ids name the version

    def setup(self):
        self.progress = Progress("articles")

    def process(self, ref: ArticleRef, total: int | None = None):
        self.progress.total = total
        count("articles", "in")
        opened = open_and_parse(ref, self.policy, self.versioned)
        self.progress.tick()
        if isinstance(opened, RejectRecord):
            yield reject(opened)
            return
        count("articles", "out")
        package, parsed = opened
        for item in figure_candidates(package, parsed, MAX_IMAGE_BYTES, self.versioned):
            count("figures", "in")
            yield reject(item) if isinstance(item, RejectRecord) else item


class BuildPairs(beam.DoFn):
    def __init__(self, image: ImageOptions, splits: SplitRatios):
        self.image = image
        self.splits = splits

    def setup(self):
        self.progress = Progress("figures")

    def process(self, candidate: FigureCandidate):
        result = build_pair(candidate, self.image, self.splits)
        self.progress.tick()
        if isinstance(result, RejectRecord):
            yield reject(result)
        else:
            count("figures", "out")
            yield result


def _not_found(item: tuple[str, dict]):
    pmcid, groups = item
    if groups["requested"]:
        count("requested", "in")
        if groups["found"]:
            count("requested", "out")
        else:
            yield counted_reject(
                RejectRecord(id=f"pmc/{pmcid}", stage="requested", reason="pmcid_not_found", source="pmc")
            )


def build(pipeline: beam.Pipeline, options: PmcIngestOptions) -> None:
    units = listing_units(options.source, options.pmcids, options.listing)
    listed = (
        pipeline
        | "ListingUnits" >> beam.Create(units)
        | "Reshuffle units" >> beam.Reshuffle()
        | "List" >> beam.FlatMap(refs_in_unit)
    )
    listed = listed | "CountListed" >> beam.ParDo(CountAs("listing", "in"))

    reject_groups = []
    if options.pmcids is not None:
        wanted = frozenset(options.pmcids)

        def requested(ref: ArticleRef) -> bool:
            keep = ref.pmcid in wanted
            if not keep:
                count("listing", "removed.not_requested")
            return keep

        listed = listed | "OnlyRequested" >> beam.Filter(requested)
        found = listed | "FoundIds" >> beam.Map(lambda r: (r.pmcid, None))
        asked = pipeline | "RequestedIds" >> beam.Create([(p, None) for p in options.pmcids])
        reject_groups.append(
            {"requested": asked, "found": found}
            | "MatchRequested" >> beam.CoGroupByKey()
            | "NotFound" >> beam.FlatMap(_not_found)
        )

    refs = (
        listed
        | "ByPmcid" >> beam.Map(lambda r: (r.pmcid, r))
        | "GroupVersions" >> beam.GroupByKey()
        | "SelectVersions" >> beam.ParDo(SelectVersions(options.all_versions))
    )
    if options.limit is not None:
        limit = options.limit
        total = refs | "CountSelectedVersions" >> beam.combiners.Count.Globally()

        def first_n(top: list[ArticleRef], total: int):
            # Top keeps `limit` refs per combiner, never the whole listing on one worker.
            count("listing", "removed.over_limit", max(0, total - len(top)))
            yield from top

        refs = (
            refs
            | "FirstN" >> beam.combiners.Top.Smallest(limit, key=_listing_order)
            | "Limit" >> beam.FlatMap(first_n, total=beam.pvalue.AsSingleton(total))
        )
    refs = refs | "CountSelected" >> beam.ParDo(CountAs("listing", "out"))
    listed = refs | "ListingTotal" >> beam.combiners.Count.Globally()  # only a number: for the progress line

    policy = SelectionPolicy(license=options.license, include_retracted=options.include_retracted)
    articles = (
        refs
        | "Spread articles" >> beam.Reshuffle()
        | "ExtractFigures"
        >> beam.ParDo(
            ExtractFigures(policy, options.all_versions), total=beam.pvalue.AsSingleton(listed)
        ).with_outputs(REJECTS, main="figures")
    )
    # No Reshuffle between the two: it would carry every source image through a shuffle (on Dataflow about
    # 1.7 TB for PMC's 7M figures; locally it cost about as much as the hash per figure, see
    # benchmarks/bench_ingest_pmc.py). "Spread articles" already gives millions of units of work, and one
    # article's figures are seconds of CPU at most, so BuildPairs fuses with ExtractFigures and streams.
    pairs = articles.figures | "BuildPairs" >> beam.ParDo(
        BuildPairs(options.image, options.splits)
    ).with_outputs(REJECTS, main="pairs")
    rejects = [articles[REJECTS], pairs[REJECTS], *reject_groups] | "AllRejects" >> beam.Flatten()
    _ = (pairs.pairs, rejects) | "WriteCorpus" >> WriteCorpus(options.out)


PMC_ATTRIBUTION = (
    "Figures and captions come from the PubMed Central (PMC) Open Access Subset, provided by the U.S. National "
    "Library of Medicine (NLM). PMC's terms ask users to acknowledge NLM as the source of the data; each "
    "article remains under its own licence (see the `license` column)."
)


def run_info(options: PmcIngestOptions) -> RunInfo:
    return RunInfo(
        pipeline="ingest pmc",
        inputs={"source": options.source, "pmcids": options.pmcids},
        options=options.describe(),
        extra={"attribution": PMC_ATTRIBUTION},
    )
