"""`medcorpus build FILE`: run a whole build declared in one YAML file (README: "One file, one build")."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build",
        help="run the sources, curation steps, training and evaluation a YAML file declares",
        description="Run a build file: every source ingested, the curation steps in order, then training and "
        "evaluation, each step reading the output of the ones before it. A step whose options and inputs have "
        "not changed since its last successful run is skipped. Any other option is a Beam pipeline option, "
        "passed to every pipeline step.",
    )
    parser.add_argument("file", help="the build file (YAML; README.md documents every key)")
    parser.add_argument(
        "--dry-run", action="store_true", help="print which steps would run and why; run none"
    )
    parser.add_argument("--out", help="write the build here instead of the file's `out:`")
    parser.add_argument(
        "--force", action="append", default=[], metavar="STEP", help="run this step even if it is up to date"
    )
    parser.set_defaults(func=run, accepts_pipeline_options=True)


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from pipelines.buildfile.execute import print_plan, run_build
    from pipelines.buildfile.spec import load_spec
    from pipelines.buildfile.state import BuildState
    from schemas.errors import UsageError

    spec = load_spec(args.file, args.out)
    spec = spec.with_beam_args([*spec.beam_args, *beam_args])  # the command line's come last: they win
    unknown = [name for name in args.force if name not in {s.name for s in spec.steps}]
    if unknown:
        raise UsageError(f"--force {unknown[0]}: no such step ({', '.join(s.name for s in spec.steps)})")
    state = BuildState(spec.out)
    if args.dry_run:
        print_plan(spec, state, set(args.force))
        return 0
    top = [*(["--debug"] if args.debug else []), *(["--verbose"] if args.verbose else [])]
    return run_build(spec, state, set(args.force), top)
