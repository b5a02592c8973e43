"""Which steps of a build run, which are up to date, and why.

A step is up to date when its last run succeeded with the same fingerprint (its command line, the
digests of what it reads, the medcorpus version) and its output is still the one that run wrote. Beam
options are not part of the fingerprint: where a pipeline runs does not change what it writes (shards
are byte-identical on every runner).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.buildfile.fingerprint import input_digest, medcorpus_version, output_digest
from pipelines.buildfile.spec import BuildSpec, Step
from pipelines.buildfile.state import BuildState


@dataclass(frozen=True)
class Decision:
    step: Step
    run: bool
    why: str


def fingerprint(spec: BuildSpec, step: Step) -> dict[str, Any]:
    """What the step's output depends on, as it is on disk now."""
    inputs = {f"step {name}": output_digest(spec.step(name)) for name in dict.fromkeys(step.reads)}
    inputs |= {path: input_digest(path) for path in dict.fromkeys(step.external)}
    return {"command": step.argv, "inputs": inputs, "medcorpus": medcorpus_version()}


def decide(
    spec: BuildSpec, step: Step, state: BuildState, force: set[str], rebuilt: set[str] = frozenset()
) -> Decision:
    """Whether `step` runs. `rebuilt`: earlier steps that will run first (a dry run cannot know what they
    will write, so the steps that read them are planned to run)."""
    entry = state.entry(step.name)
    if step.name in force:
        return Decision(step, True, "--force")
    if entry is None:
        return Decision(step, True, "never built")
    if entry["status"] != "done":
        return Decision(step, True, f"its last run did not finish (started {entry['started']})")
    output = output_digest(step)
    if output is None:
        return Decision(step, True, f"its output {step.output} is missing")
    if output != entry["output"]:
        return Decision(step, True, f"its output {step.output} changed since this build wrote it")
    waiting = [name for name in step.reads if name in rebuilt]
    if waiting:
        return Decision(
            step,
            True,
            f"it reads {', '.join(waiting)}, which run(s) first (a build skips this step if that output comes "
            "out unchanged)",
        )
    old, new = entry["fingerprint"], fingerprint(spec, step)
    if old["medcorpus"] != new["medcorpus"]:
        return Decision(step, True, f"medcorpus {old['medcorpus']} -> {new['medcorpus']}")
    if old["command"] != new["command"]:
        return Decision(step, True, "options changed: " + options_diff(old["command"], new["command"]))
    changed = [name for name in new["inputs"] if old["inputs"].get(name) != new["inputs"][name]]
    changed += [name for name in old["inputs"] if name not in new["inputs"]]
    if changed:
        return Decision(step, True, f"input changed: {', '.join(changed)}")
    return Decision(
        step, False, f"up to date: options and inputs unchanged since it ran ({entry['finished']})"
    )


def plan(spec: BuildSpec, state: BuildState, force: set[str]) -> list[Decision]:
    """Every step's decision, as a build run now would make them."""
    decisions: list[Decision] = []
    rebuilt: set[str] = set()
    for step in spec.steps:
        decision = decide(spec, step, state, force, rebuilt)
        if decision.run:
            rebuilt.add(step.name)
        decisions.append(decision)
    return decisions


def options_diff(old: list[str], new: list[str]) -> str:
    """`--max-per-concept 3 -> 4, --no-phash added`: how two command lines of one command differ."""
    before, after = _options(old), _options(new)
    parts = []
    for name in dict.fromkeys([*before, *after]):
        if name not in after:
            parts.append(f"{name} removed")
        elif name not in before:
            parts.append(f"{name} {' '.join(after[name])} added".replace("  ", " ").strip())
        elif before[name] != after[name]:
            parts.append(f"{name} {' '.join(before[name])} -> {' '.join(after[name])}")
    return ", ".join(parts) or f"{' '.join(old[:2])} -> {' '.join(new[:2])}"


def _options(argv: list[str]) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    name = None
    for word in argv:
        if word.startswith("--"):
            name = word
            options.setdefault(name, [])
        elif name is not None:
            options[name].append(word)
    return options
