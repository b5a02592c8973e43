"""The `medcorpus` command line.

Each sub-command lives in its own module under `pipelines/commands/` and exposes
`register(subparsers)`, which adds its parser and sets `func` (called with the parsed namespace and
the arguments argparse did not recognise: Beam pipeline options for the commands that run a pipeline,
checked against the options Beam defines, so that a mistyped medcorpus option is an error and never
silently ignored). Command modules keep their heavy imports inside `func`, so `medcorpus --help` stays
fast.

Errors a user can fix (a missing path, a bad option value, an unusable input: `ReasonError`, `OSError`,
`ValueError`) end the command with one line naming the reason code and exit status 2; `--debug` shows
the traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from schemas.errors import ReasonError

EXIT_USAGE = 2

COMMAND_MODULES = [
    "pipelines.commands.ingest",
    "pipelines.commands.tag",
    "pipelines.commands.balance",
    "pipelines.commands.dedupe",
    "pipelines.commands.umls",
    "pipelines.commands.train",
    "pipelines.commands.evaluate",
    "pipelines.commands.tokenizer",
    "pipelines.commands.build",
    "pipelines.commands.report",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medcorpus",
        description="Build medical image-text corpora on Apache Beam and pretrain BiomedCLIP-like models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.verbose:
        # medcorpus's own progress at INFO; libraries (Beam, open_clip, nmslib) only warn. Beam also warns
        # on import that its optional BigQuery client is missing, which medcorpus never uses.
        for own in ("medcorpus", "connectors", "curation", "models", "pipelines"):
            logging.getLogger(own).setLevel(logging.INFO)
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda record: not record.getMessage().startswith("apitools not found"))
    if extra:
        unknown = (
            unknown_pipeline_options(extra) if getattr(args, "accepts_pipeline_options", False) else extra
        )
        if unknown:
            parser.error(
                f"unrecognised arguments: {' '.join(unknown)} (see `medcorpus {args.command} --help`; "
                "other options must be Beam pipeline options)"
            )
    if getattr(args, "accepts_pipeline_options", False):
        absolute_paths(args)
    try:
        return int(args.func(args, extra) or 0)
    except (ReasonError, OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"medcorpus {args.command}: error: {error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


# Options that name files or folders a pipeline's workers read or write; keywords that are not paths stay.
PATH_OPTIONS = (
    "source",
    "out",
    "input",
    "inputs",
    "against",
    "dataset",
    "dataset_root",
    "card",
    "kb",
    "cache_dir",
    "image_embedder",
    "caption_embedder",
)
NOT_PATHS = {"none", "bundled-minilm"}


def absolute_paths(args: argparse.Namespace) -> None:
    """Every path a pipeline's workers open becomes absolute at construction: on Dataflow, Flink or Spark
    (or Beam's portable runner here) the workers run in other folders than the launcher."""
    from connectors.fs import absolute

    for name in PATH_OPTIONS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value.lower() not in NOT_PATHS:
            setattr(args, name, absolute(value))
        elif isinstance(value, list):
            setattr(args, name, [absolute(v) for v in value])


def error_line(exc: BaseException) -> str:
    """`[reason] what happened` for an error a user can fix."""
    if isinstance(exc, ReasonError):
        reason, detail = exc.reason, exc.detail or str(exc)
    elif isinstance(exc, FileNotFoundError):
        reason, detail = "path_missing", str(exc)
    elif isinstance(exc, PermissionError):
        reason, detail = "permission_denied", str(exc)
    elif isinstance(exc, OSError):
        reason, detail = "io_error", str(exc)
    else:
        reason, detail = "input_invalid", str(exc)
    return f"[{reason}] {detail}"


def unknown_pipeline_options(args: list[str]) -> list[str]:
    """The arguments that no Beam `PipelineOptions` class defines (parsed as Beam itself parses them,
    without abbreviations)."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(args)
    return unknown


def console() -> None:
    """The `medcorpus` command: `main()`, then an exit that skips the C++ static destructors.

    Every command has written, closed and renamed its outputs before `main()` returns. What used to abort
    about one Beam run in twenty afterwards (SIGABRT, "terminate called without an active exception", exit
    134) is pyarrow's global CPU and IO thread pools: their workers (`arrow::internal::ThreadPool`, started
    by the Parquet reads and writes that run on Beam's worker threads) are the only `std::thread`s still
    alive at exit (seen with gdb on a finished run), and libstdc++ prints that message when a still-joinable
    `std::thread` is destroyed, which happens when the pools' teardown races their workers during static
    destruction. The pools live as long as the process by design, so the process leaves through
    `os._exit` once streams and logs are flushed: nothing is left to tear down, and the exit code is the
    run's own. `tests/pipelines/test_exit_codes.py` runs each command repeatedly as a process.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
