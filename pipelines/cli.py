"""The `medcorpus` command line.

Each sub-command lives in its own module under `pipelines/commands/` and exposes
`register(subparsers)`, which adds its parser and sets `func` (called with the parsed namespace and
the list of arguments argparse did not recognise, which become Beam pipeline options).
Command modules keep their heavy imports inside `func`, so `medcorpus --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

COMMAND_MODULES = [
    "pipelines.commands.ingest",
    "pipelines.commands.tag",
    "pipelines.commands.balance",
    "pipelines.commands.dedupe",
    "pipelines.commands.umls",
    "pipelines.commands.train",
    "pipelines.commands.evaluate",
    "pipelines.commands.tokenizer",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medcorpus",
        description="Build medical image-text corpora on Apache Beam and pretrain BiomedCLIP-like models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
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
    if extra and not getattr(args, "accepts_pipeline_options", False):
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    return int(args.func(args, extra) or 0)


def console() -> None:
    """The `medcorpus` command: `main()`, then an exit that skips interpreter teardown.

    Every command has written, closed and renamed its outputs before `main()` returns. A native thread
    that a library leaves running can still abort the teardown that follows (SIGABRT, "terminate called
    without an active exception", exit 134) after a complete run, as about one Beam run in twenty did;
    leaving through `os._exit` once the streams and logs are flushed keeps the exit code the run's own.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
