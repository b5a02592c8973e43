"""Running a build: each step that is not up to date, in order, through `pipelines.cli.main` with the
argv the build file made (the same code, options and errors as typing the command).

A step that fails stops the build; the steps before it keep their outputs and their `done` records, so
the next build starts where this one stopped.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from pipelines.buildfile.fingerprint import output_digest
from pipelines.buildfile.plan import decide, fingerprint, plan
from pipelines.buildfile.spec import BuildSpec, Step
from pipelines.buildfile.state import STATE_FILE, BuildState

EXIT_STEP_FAILED = 2
# What `medcorpus train` writes into its run folder (models/clip/train.py).
RUN_CONTENTS = ("checkpoints", "model", "tensorboard", "export", "metrics.jsonl", "summary.json", "eval.json")


def print_plan(spec: BuildSpec, state: BuildState, force: set[str]) -> None:
    """`--dry-run`: every step, whether it would run and why, and its command line."""
    decisions = plan(spec, state, force)
    running = sum(d.run for d in decisions)
    skipping = len(decisions) - running
    print(f"build {spec.file} -> {spec.out}: {len(decisions)} steps, {running} to run, {skipping} up to date")
    width = max(len(d.step.name) for d in decisions)
    for decision in decisions:
        print(f"  {decision.step.name:<{width}}  {'run ' if decision.run else 'skip'}  {decision.why}")
    for decision in decisions:
        if decision.run:
            print(f"  {decision.step.name}: {spec.command_line(decision.step)}")


def run_build(spec: BuildSpec, state: BuildState, force: set[str], top_options: list[str]) -> int:
    """Run the steps that are not up to date; 0, or the exit status of the step that failed.
    `top_options`: `medcorpus`'s own options (`--debug`, `-v`) for every step."""
    from pipelines.cli import error_line, main

    ran: list[str] = []
    skipped: list[str] = []
    total = len(spec.steps)
    for index, step in enumerate(spec.steps, 1):
        decision = decide(spec, step, state, force)
        say(f"[{index}/{total}] {step.name}: {'running' if decision.run else 'skipped'} ({decision.why})")
        if not decision.run:
            skipped.append(step.name)
            continue
        say(f"    {spec.command_line(step)}")
        before = fingerprint(spec, step)
        state.started(step.name, before)
        if step.output_kind == "run":
            _clear_run(step)
        started = time.monotonic()
        try:
            code = main([*top_options, *step.argv, *(spec.beam_args if step.beam else ())])
        except SystemExit as exc:  # argparse inside the command: the build checked the options, so rare
            code = exc.code if isinstance(exc.code, int) else EXIT_STEP_FAILED
        except Exception as exc:  # a bug in the command: say which step, keep the traceback
            _failed(spec, step, ran, skipped, f"{type(exc).__name__}: {error_line(exc)}")
            raise
        if code != 0:
            _failed(spec, step, ran, skipped, f"exit status {code}; its error is above")
            return code
        state.done(step.name, before, output_digest(step), time.monotonic() - started)
        ran.append(step.name)
        say(f"[{index}/{total}] {step.name}: done in {time.monotonic() - started:.1f} s -> {step.output}")
    say(
        f"build {spec.file}: {len(ran)} step(s) ran, {len(skipped)} up to date"
        + (f" ({', '.join(skipped)})" if skipped else "")
        + f"; outputs under {spec.out}, record in {spec.out}/{STATE_FILE}"
    )
    return 0


def _clear_run(step: Step) -> None:
    """Train refuses a run folder with checkpoints (it would mix two runs), so a rerun starts afresh, unless
    the step resumes: what a run writes is removed, as `--overwrite` removes only what a corpus owns."""
    if "--resume" in step.options:
        return
    for name in RUN_CONTENTS:
        path = Path(step.output) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _failed(spec: BuildSpec, step: Step, ran: list[str], skipped: list[str], what: str) -> None:
    done = [*skipped, *ran]
    say(
        f"medcorpus build: error: [build_step_failed] step {step.name} failed ({what}). "
        + (
            f"The steps before it are complete and recorded ({', '.join(done)}): rerunning "
            f"`medcorpus build {spec.file}` skips them."
            if done
            else "No step finished."
        )
    )


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
