"""Running a corpus pipeline: check the output, run on the chosen Beam runner into a staging folder,
write the manifest (with its reconciliation), the dataset card, croissant.json and report.html there,
publish, and summarise."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from connectors.corpus import RunInfo, build_manifest, write_manifest
from connectors.corpus_card import write_card
from connectors.corpus_documents import write_corpus_documents
from connectors.publish import check_output, publish, remove_staging, staging_dir
from pipelines.accounting import stage_counts

log = logging.getLogger("medcorpus")

EXIT_NOT_RECONCILED = 3
EXIT_NO_PAIRS = 4


def run_corpus_pipeline(
    build: Callable[[beam.Pipeline, str], None],
    out: str,
    run: RunInfo,
    beam_args: list[str],
    final_stage: str,
    title: str,
    overwrite: bool = False,
    after_run: Callable[[str], dict[str, Any]] | None = None,
    inputs: Sequence[str] = (),
) -> dict[str, Any]:
    """Build and run the pipeline; returns the manifest it wrote. The local in-process runner unless
    `--runner` says otherwise.

    `build(pipeline, folder)` wires the pipeline to write its corpus into `folder`, a staging folder that
    is published to `out` only when the run succeeded (`connectors.publish`). `inputs`: the folders the
    run reads, which `out` must not overlap. `after_run(folder)` adds fields to the manifest computed from
    the finished output."""
    check_output(out, list(inputs), overwrite)
    staging = staging_dir(out)
    try:
        options = PipelineOptions(beam_args)
        pipeline = beam.Pipeline(runner=_default_runner(options), options=options)
        build(pipeline, staging)
        result = pipeline.run()
        result.wait_until_finish()
        manifest = build_manifest(staging, run, stage_counts(result), final_stage)
        if after_run is not None:  # figures only known once the output exists
            manifest.update(after_run(staging))
        write_card(staging, manifest, title)
        write_manifest(staging, manifest)
        # croissant.json and report.html go out with the corpus, so a reader never sees stale ones.
        write_corpus_documents(staging, manifest, out.rstrip("/").rsplit("/", 1)[-1], title)
        publish(staging, out)
    finally:
        remove_staging(staging)
    return manifest


def _default_runner(options: PipelineOptions):
    """Without --runner, Beam's in-process runner (what DirectRunner uses for batch pipelines).

    DirectRunner itself first tries the Prism runner, which downloads a binary from GitHub at run
    time; a local run must not depend on the network, so medcorpus goes straight to the FnApiRunner.
    `--direct_num_workers N --direct_running_mode multi_processing` use several cores.
    """
    from apache_beam.options.pipeline_options import StandardOptions

    if options.view_as(StandardOptions).runner is not None:
        return None
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    log.info("running on the local in-process Beam runner (pass --runner to use another)")
    return FnApiRunner()


def finish(manifest: dict[str, Any]) -> int:
    """Print the run's summary; the exit code: 0, EXIT_NOT_RECONCILED (3) when the counts do not add
    up, EXIT_NO_PAIRS (4) when the corpus holds no pair (it is still written, with its rejects)."""
    print(summary(manifest), file=sys.stderr)
    if not manifest["reconciled"]:
        return EXIT_NOT_RECONCILED
    if manifest["outputs"]["pairs"] == 0:
        print(
            f"{manifest['pipeline']}: wrote no pairs; every input was rejected or removed. The rejects say why: "
            'datasets.load_dataset("<out>", "rejects")',
            file=sys.stderr,
        )
        return EXIT_NO_PAIRS
    return 0


def summary(manifest: dict[str, Any]) -> str:
    """A few lines for the end of a run: stage counts, rejects by reason, throughput."""
    wall = manifest["wall_time_s"]
    lines = [f"{manifest['pipeline']}: finished in {wall:.1f} s"]
    for name, stage in manifest["stages"].items():
        parts = [f"{stage['in']} in", f"{stage['out']} out"]
        if stage["rejected"]:
            parts.append(f"{sum(stage['rejected'].values())} rejected")
        if stage["removed"]:
            parts.append(f"{sum(stage['removed'].values())} removed")
        rate = f" ({stage['in'] / wall:.1f}/s)" if wall > 0 and stage["in"] else ""
        lines.append(f"  {name:<10} {', '.join(parts)}{rate}")
    outputs = manifest["outputs"]
    splits = ", ".join(f"{k} {v}" for k, v in outputs["by_split"].items()) or "none"
    lines.append(f"  written    {outputs['pairs']} pairs ({splits}) in {len(outputs['shards'])} shard(s)")
    for stage, reasons in manifest["rejects"]["by_stage"].items():
        lines.append(f"  rejects    {stage}: " + ", ".join(f"{r} {n}" for r, n in reasons.items()))
    lines += [f"  WARNING    {warning}" for warning in manifest.get("warnings", [])]
    lines.append(
        "  manifest   "
        + ("reconciled" if manifest["reconciled"] else "NOT reconciled: " + "; ".join(manifest["problems"]))
    )
    return "\n".join(lines)
