"""A build file, checked and turned into steps: each step is an existing command's argv.

    out: out/demo                    # every step writes <out>/<name>
    beam_options: {direct_num_workers: 2}
    sources:                         # name: {ingest: pmc|classification, <that command's options>}
    curation:                        # in order: {step: dedupe|tag|balance, name, in, <options>}
    train: {name, corpus, <train's options>}
    eval: {name, checkpoint, corpus, <eval's options>}

`in`, `corpus`, `against` and `checkpoint` may name an earlier step (its output is read) or give a path.
Every other key is an option of the step's command, checked by that command's argparse definition
(`command_options`). README.md documents every key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import re
import shlex
from pathlib import Path

from pipelines.buildfile.command_options import CommandOptions, command_parser
from pipelines.buildfile.marked_yaml import BuildFileError, Marked, did_you_mean, load

TOP_KEYS = ("out", "beam_options", "sources", "curation", "train", "eval")
SOURCE_KINDS = {"pmc": ("ingest", "pmc"), "classification": ("ingest", "classification")}
CURATION_KINDS = {"dedupe": ("dedupe",), "tag": ("tag",), "balance": ("balance",)}
# Options whose values may name an earlier step instead of giving a path.
REFERENCES = ("in", "against", "corpus", "checkpoint")
# Path options that are not inputs: a cache changes as it fills and says nothing about the output.
NOT_INPUTS = ("cache-dir",)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    kind: str  # pmc, classification, dedupe, tag, balance, train, eval
    command: tuple[str, ...]  # ("ingest", "pmc")
    options: tuple[str, ...]  # the command's options, references resolved to paths
    reads: tuple[str, ...]  # the earlier steps whose outputs it reads
    external: tuple[str, ...]  # local files and folders it reads that no step writes
    output: str
    output_kind: str  # corpus (a corpus folder), run (a training run folder), file (eval's JSON)
    line: int
    beam: bool  # a Beam pipeline: the build's Beam options go to it

    @property
    def argv(self) -> list[str]:
        return [*self.command, *self.options]

    def shell(self) -> str:
        return "medcorpus " + shlex.join(self.argv)


@dataclasses.dataclass(frozen=True)
class BuildSpec:
    file: str
    out: str
    beam_args: tuple[str, ...]
    steps: tuple[Step, ...]

    def command_line(self, step: Step) -> str:
        """The step as a command a user could type, Beam options included."""
        return step.shell() + "".join(f" {shlex.quote(a)}" for a in (self.beam_args if step.beam else ()))

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def with_beam_args(self, beam_args: list[str]) -> BuildSpec:
        return dataclasses.replace(self, beam_args=tuple(beam_args))


def load_spec(file: str, out: str | None = None) -> BuildSpec:
    """The build `file` declares; `out` replaces its `out:`. `BuildFileError` names the line of a
    mistake."""
    try:
        text = Path(file).read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"build file {file} does not exist") from None
    root = load(text, file)
    return _Builder(file, root, out).spec()


class _Builder:
    def __init__(self, file: str, root: Marked, out: str | None) -> None:
        from pipelines.cli import build_parser

        self.file = file
        self.root = _mapping(root, file, "the build file")
        _known_keys(root, TOP_KEYS, file, "the build file")
        if out is None:
            out = _string(self._required("out"), file, "out")
        self.out = out.rstrip("/") or out
        self.parser = build_parser()
        self.steps: list[Step] = []

    def spec(self) -> BuildSpec:
        beam_args = _beam_args(self.root.get("beam_options"), self.file)
        sources = _mapping(self._required("sources"), self.file, "sources")
        if not sources:
            raise BuildFileError(
                "build_file_invalid", self.file, self.root["sources"].line, "`sources` declares no source"
            )
        for name, entry in sources.items():
            self._source(name, entry, self.root["sources"].key_lines[name])
        source_names = [s.name for s in self.steps]
        curation = self.root.get("curation")
        previous = source_names
        if curation is not None:
            if not isinstance(curation.value, list):
                raise BuildFileError(
                    "build_file_invalid", self.file, curation.line, "`curation` is a list of steps"
                )
            for entry in curation.value:
                previous = [self._curation(entry, previous)]
        train = self.root.get("train")
        if train is not None:
            self._train(train, previous)
        evaluation = self.root.get("eval")
        if evaluation is not None:
            self._eval(evaluation, train is not None)
        return BuildSpec(self.file, self.out, beam_args, tuple(self.steps))

    def _required(self, key: str) -> Marked:
        if key not in self.root:
            raise BuildFileError("build_file_invalid", self.file, 1, f"the build file needs `{key}`")
        return self.root[key]

    # the four kinds of step

    def _source(self, name: str, entry: Marked, line: int) -> None:
        fields = _mapping(entry, self.file, f"source {name}")
        kind = self._kind(fields, "ingest", SOURCE_KINDS, entry, f"source {name}: `ingest` must be one of")
        self._add(name, line, kind, SOURCE_KINDS[kind], entry, ("ingest",), {})

    def _curation(self, entry: Marked, previous: list[str]) -> str:
        fields = _mapping(entry, self.file, "a curation step")
        kind = self._kind(fields, "step", CURATION_KINDS, entry, "a curation step needs `step:`")
        name = self._name(fields, kind)
        self._add(
            name,
            entry.line,
            kind,
            CURATION_KINDS[kind],
            entry,
            ("step", "name"),
            {"in": previous},
        )
        return name

    def _kind(self, fields: dict, key: str, kinds: dict, entry: Marked, message: str) -> str:
        """The step kind named by ``key``, or the build file's error at its line."""
        kind = fields.get(key)
        if kind is None or kind.value not in kinds:
            raise BuildFileError(
                "build_file_invalid",
                self.file,
                kind.line if kind else entry.line,
                f"{message} {', '.join(kinds)}" + (did_you_mean(str(kind.value), kinds) if kind else ""),
            )
        return str(kind.value)

    def _train(self, entry: Marked, previous: list[str]) -> None:
        fields = _mapping(entry, self.file, "train")
        self._add(
            self._name(fields, "train"),
            entry.line,
            "train",
            ("train",),
            entry,
            ("name",),
            {"corpus": previous},
        )

    def _eval(self, entry: Marked, after_train: bool) -> None:
        fields = _mapping(entry, self.file, "eval")
        defaults: dict[str, list[str]] = {}
        if after_train:
            train = next(s for s in self.steps if s.kind == "train")
            defaults["checkpoint"] = [train.name]
            if "corpus" not in fields and "zeroshot" not in fields:
                defaults["corpus"] = [r for r in train.reads]
        self._add(self._name(fields, "eval"), entry.line, "eval", ("eval",), entry, ("name",), defaults)

    # what every step shares

    def _name(self, fields: dict[str, Marked], default: str) -> str:
        return _string(fields["name"], self.file, "name") if "name" in fields else default

    def _add(
        self,
        name: str,
        line: int,
        kind: str,
        command: tuple[str, ...],
        entry: Marked,
        build_keys: tuple[str, ...],
        defaults: dict[str, list[str]],
    ) -> None:
        what = f"step {name}"
        if not _NAME.match(name):
            raise BuildFileError(
                "build_file_invalid",
                self.file,
                line,
                f"{what}: a name is a folder name (letters, digits, . _ -)",
            )
        if any(s.name == name for s in self.steps):
            raise BuildFileError(
                "build_file_invalid", self.file, line, f"two steps are named `{name}`: give one a `name:`"
            )
        options = CommandOptions(command_parser(self.parser, command), self.file, what)
        fields = entry.value
        argv: list[str] = []
        lines: dict[str, int] = {}
        reads: list[str] = []
        external: list[str] = []
        for key, value in fields.items():
            if key in build_keys:
                continue
            action = options.action(key, Marked(value.value, entry.key_lines[key]), also=build_keys)
            for flag in action.option_strings:
                lines[flag] = entry.key_lines[key]
            resolved = None
            if key in REFERENCES:
                resolved = [self._reference(key, m, what, reads, external) for m in _items(value)]
            elif key not in NOT_INPUTS:
                external += _local_paths(key, value)
            argv += options.argv(key, value, resolved)
        for key, names in defaults.items():
            if key not in fields and options.has(key):
                if len(names) > 1 and not options.repeatable(key):
                    raise BuildFileError(
                        "build_file_invalid",
                        self.file,
                        line,
                        f"{what} reads one corpus, and {len(names)} come before it ({', '.join(names)}): "
                        f"say which with `{key}:`",
                    )
                argv += options.argv(
                    key, Marked(names, line), [self._read(n, key, line, what, reads) for n in names]
                )
        output = f"{self.out}/{name}.json" if kind == "eval" else f"{self.out}/{name}"
        argv += ["--out", output] + (["--overwrite"] if options.has("overwrite") else [])
        options.check(argv, lines, line)
        output_kind = {"train": "run", "eval": "file"}.get(kind, "corpus")
        beam = bool(options.parser.get_default("accepts_pipeline_options"))
        self.steps.append(
            Step(
                name,
                kind,
                command,
                tuple(argv),
                tuple(reads),
                tuple(external),
                output,
                output_kind,
                line,
                beam,
            )
        )

    def _reference(self, key: str, marked: Marked, what: str, reads: list[str], external: list[str]) -> str:
        value = _string(marked, self.file, key)
        if any(s.name == value for s in self.steps):
            return self._read(value, key, marked.line, what, reads)
        if "/" in value or os.path.exists(value):
            external += _local_paths(key, marked)
            return value
        later = [n for n in self._declared_names() if n == value]
        raise BuildFileError(
            "build_file_invalid",
            self.file,
            marked.line,
            f"{what}: `{key}: {value}` "
            + (
                "names a step that comes later: a step reads only what earlier steps wrote"
                if later
                else f"is neither an earlier step nor a path{did_you_mean(value, [s.name for s in self.steps])}"
            ),
        )

    def _read(self, name: str, key: str, line: int, what: str, reads: list[str]) -> str:
        """The path `key` gets for the earlier step `name`; records that the step reads it."""
        step = next(s for s in self.steps if s.name == name)
        wants_run = key == "checkpoint"
        if wants_run != (step.output_kind == "run"):
            raise BuildFileError(
                "build_file_invalid",
                self.file,
                line,
                f"{what}: `{key}` wants a {'training run' if wants_run else 'corpus'}, and step {name} writes "
                f"a {'training run' if step.output_kind == 'run' else step.output_kind}",
            )
        reads.append(name)
        return f"{step.output}/export" if wants_run else step.output

    def _declared_names(self) -> list[str]:
        names = list((self.root.get("sources") or Marked({}, 1)).value)
        for entry in (self.root.get("curation") or Marked([], 1)).value:
            if isinstance(entry.value, dict):
                fields = entry.value
                names.append(str((fields.get("name") or fields.get("step") or Marked("", 1)).value))
        for key, default in (("train", "train"), ("eval", "eval")):
            if isinstance((self.root.get(key) or Marked(None, 1)).value, dict):
                names.append(str(self.root[key].value.get("name", Marked(default, 1)).value))
        return names


def _beam_args(marked: Marked | None, file: str) -> tuple[str, ...]:
    """`beam_options:` as Beam command-line words (`true`: the flag alone, `false`: left out, a list: the
    option repeated); a name Beam does not define, or a value it refuses, is an error at its line."""
    from pipelines.cli import unknown_pipeline_options

    if marked is None:
        return ()
    words: list[str] = []
    for name, value in _mapping(marked, file, "beam_options").items():
        line = marked.key_lines[name]
        if not _is_beam_option(name):
            raise BuildFileError(
                "build_key_unknown",
                file,
                line,
                f"beam_options: `{name}` is not a Beam pipeline option{did_you_mean(name, _beam_names())}",
            )
        if value.value is None or isinstance(value.value, dict):
            raise BuildFileError("build_file_invalid", file, line, f"beam_options: `{name}` needs a value")
        if isinstance(value.value, bool):
            option = [f"--{name}"] if value.value else []
        else:
            option = [f"--{name}={item.value}" for item in _items(value)]
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # Beam's parser exits on a value it refuses
                refused = unknown_pipeline_options(option)
        except SystemExit:
            refused = option
        if refused:
            raise BuildFileError(
                "build_file_invalid", file, line, f"beam_options: Beam does not take {' '.join(refused)}"
            )
        words += option
    return tuple(words)


def _is_beam_option(name: str) -> bool:
    from pipelines.cli import unknown_pipeline_options

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return not unknown_pipeline_options([f"--{name}"])
    except SystemExit:  # Beam knows the option, and it wants a value
        return True


@functools.cache
def _beam_names() -> frozenset[str]:
    """The options Beam defines, as `beam_options:` spells them (the flags' names without dashes)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return frozenset(PipelineOptions([]).get_all_options(drop_default=False))


def _local_paths(key: str, marked: Marked) -> list[str]:
    """The local files and folders among a key's values; a dataset manifest's folder too (the images it
    names live there)."""
    paths = []
    for item in _items(marked):
        value = item.value
        if isinstance(value, str) and "://" not in value and os.path.exists(value):
            paths.append(value)
            if key == "dataset" and os.path.isfile(value):
                paths.append(os.path.dirname(value) or ".")
    return paths


def _items(marked: Marked) -> list[Marked]:
    return marked.value if isinstance(marked.value, list) else [marked]


def _mapping(marked: Marked, file: str, what: str) -> dict[str, Marked]:
    if not isinstance(marked.value, dict):
        raise BuildFileError(
            "build_file_invalid", file, marked.line, f"{what} must be a mapping (key: value)"
        )
    return marked.value


def _string(marked: Marked, file: str, key: str) -> str:
    if not isinstance(marked.value, str) or not marked.value:
        raise BuildFileError("build_file_invalid", file, marked.line, f"`{key}` must be a non-empty string")
    return marked.value


def _known_keys(marked: Marked, known: tuple[str, ...], file: str, what: str) -> None:
    for key, line in marked.key_lines.items():
        if key not in known:
            raise BuildFileError(
                "build_key_unknown", file, line, f"{what}: unknown key `{key}`{did_you_mean(key, known)}"
            )
