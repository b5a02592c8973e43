"""`ingest pmc --limit N` on a large listing: Beam's Top.Smallest (today) against collecting the whole
listing into one list on one worker and sorting it (before), on the same synthetic listing in one run.

The listing is N article references with PMCIDs spread over PMC's range in a shuffled order, each
element made on the workers (not pickled from the launcher). Both pipelines pick the first `--limit`
articles: today in numeric PMCID order (PMC99 before PMC100), before in string order, which also picked
other articles; the script prints how many of the first N the string order got wrong.

    .venv/bin/python benchmarks/bench_limit.py [--articles 1000000] [--limit 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from connectors.pmc_source import ArticleRef
from pipelines.pmc_ingest import _listing_order


def reference(i: int, seed: int = 7) -> ArticleRef:
    number = random.Random(seed * 1_000_003 + i).randrange(1, 13_000_000)
    return ArticleRef(pmcid=f"PMC{number}", version=1, layout="cloud", root="s3://pmc-oa-opendata", path="")


def save(pmcids: list[str], path: str) -> None:
    Path(path).write_text(json.dumps(pmcids))


def run(articles: int, choose: beam.PTransform, out: str) -> tuple[float, list[str]]:
    start = time.perf_counter()
    with beam.Pipeline(options=PipelineOptions(["--direct_num_workers", "1"])) as pipeline:
        _ = (
            pipeline
            | beam.Create(range(0, articles, 10_000))
            | beam.FlatMap(lambda first: (reference(i) for i in range(first, min(first + 10_000, articles))))
            | choose
            | beam.Map(lambda top: [ref.pmcid for ref in top])
            | beam.Map(save, out)  # the workers' result comes back through a file, as on any runner
        )
    return time.perf_counter() - start, json.loads(Path(out).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--limit", type=int, default=1000)
    args = parser.parse_args()
    limit = args.limit

    def before(refs: list[ArticleRef]) -> list[ArticleRef]:
        return sorted(refs, key=lambda r: r.pmcid)[:limit]

    contenders = {
        "Top.Smallest, numeric order (today)": beam.combiners.Top.Smallest(limit, key=_listing_order),
        "one list on one worker, string order (before)": beam.CombineGlobally(
            beam.combiners.ToListCombineFn()
        )
        | beam.Map(before),
    }
    print(f"{args.articles} listed articles, --limit {limit}, Beam's local runner, one worker")
    results = {}
    for n, (name, transform) in enumerate(contenders.items()):
        with tempfile.TemporaryDirectory() as scratch:
            seconds, chosen = run(args.articles, transform, f"{scratch}/chosen-{n}.json")
        results[name] = chosen
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  {name:48s} {seconds:7.1f} s  (process peak RSS so far {peak:.0f} MB)")
    today, old = results.values()
    truth = sorted((reference(i).pmcid for i in range(args.articles)), key=lambda p: int(p[3:]))[:limit]
    assert today == truth, "Top.Smallest did not give the first N in numeric order"
    wrong = len(set(old) - set(truth))
    print(f"  string order picked {wrong} of {limit} articles that are not among the first {limit} by PMCID")


if __name__ == "__main__":
    main()
