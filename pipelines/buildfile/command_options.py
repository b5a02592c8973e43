"""A build step's options, checked by the command's own argparse definition: one definition of every
option, whether it is typed on the command line or written in a build file.

A key is the option's long name without the dashes (`max-per-concept: 3` is `--max-per-concept 3`).
Flags take `true` (pass the flag) or `false` (leave it out); repeatable options take a list.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Sequence

from pipelines.buildfile.marked_yaml import BuildFileError, Marked, did_you_mean

# Options the build itself sets: every step writes `<out>/<name>`, and replaces what it wrote before.
BUILD_OWNED = ("out", "overwrite")


def command_parser(root: argparse.ArgumentParser, command: Sequence[str]) -> argparse.ArgumentParser:
    """The parser of `medcorpus <command...>` inside the `medcorpus` parser (`ingest pmc`, `tag`)."""
    parser = root
    for word in command:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return parser


class CommandOptions:
    """The options one command defines, and the argv a step's keys make of them."""

    def __init__(self, parser: argparse.ArgumentParser, file: str, what: str) -> None:
        self.parser = parser
        self.file = file
        self.what = what  # "step tag", "source pmc": how errors name the step
        self._actions = {
            s[2:]: a
            for a in parser._actions
            for s in a.option_strings
            if s.startswith("--") and s != "--help"
        }

    def names(self) -> list[str]:
        """The keys a step may set (what the build sets itself is left out)."""
        return [n for n in self._actions if n not in BUILD_OWNED]

    def has(self, name: str) -> bool:
        return name in self._actions

    def repeatable(self, name: str) -> bool:
        return isinstance(self._actions.get(name), argparse._AppendAction)

    def action(self, key: str, marked: Marked, also: Sequence[str] = ()) -> argparse.Action:
        """The option a key names; an error at the key's line when the command has none."""
        if key in BUILD_OWNED and key in self._actions:
            raise BuildFileError(
                "build_file_invalid",
                self.file,
                marked.line,
                f"{self.what}: `{key}` is set by the build (each step writes <out>/<name>, replacing what it "
                "wrote before)",
            )
        if key not in self._actions:
            raise BuildFileError(
                "build_key_unknown",
                self.file,
                marked.line,
                f"{self.what}: unknown key `{key}`{did_you_mean(key, [*self.names(), *also])} "
                f"(`medcorpus {self.parser.prog.removeprefix('medcorpus ')} --help` lists the options)",
            )
        return self._actions[key]

    def argv(self, key: str, marked: Marked, values: list[str] | None = None) -> list[str]:
        """The command-line words for one key. `values`: the strings to pass instead of the YAML's
        (references to other steps, already resolved to their folders)."""
        action = self.action(key, marked)
        flag = f"--{key}"
        if action.nargs == 0:  # store_true / store_false
            if not isinstance(marked.value, bool):
                self._fail(marked, f"`{key}` is a flag: write `{key}: true` (or false, the default)")
            return [flag] if marked.value else []
        if values is None:
            items = marked.value if isinstance(marked.value, list) else [marked]
            values = [self._scalar(key, m if isinstance(m, Marked) else marked) for m in items]
        if not values:
            self._fail(marked, f"`{key}` has no value")
        if len(values) > 1 and not isinstance(action, argparse._AppendAction):
            self._fail(marked, f"`{key}` takes one value, not a list")
        return [word for value in values for word in (flag, value)]

    def _scalar(self, key: str, marked: Marked) -> str:
        value = marked.value
        if value is None:
            self._fail(marked, f"`{key}` has no value")
        if isinstance(value, bool):
            # YAML reads yes/no/on/off as booleans: an option that takes a value wants it quoted
            self._fail(marked, f"`{key}` takes a value, not true/false (quote it if you mean the word)")
        if isinstance(value, dict | list):
            self._fail(marked, f"`{key}` takes a single value")
        return str(value)

    def check(self, argv: list[str], lines: dict[str, int], step_line: int) -> None:
        """Parse `argv` with the command's parser: a missing required option, a value of the wrong type, a
        choice the option does not offer, or two options that exclude each other is an error at the line
        that set it (the step's line when no key did)."""
        given = set(argv)
        for action in self.parser._actions:
            if action.required and not given & set(action.option_strings):
                name = next(s[2:] for s in action.option_strings if s.startswith("--"))
                raise BuildFileError(
                    "build_file_invalid", self.file, step_line, f"{self.what}: `{name}` is required"
                )
        self.parser.exit_on_error = False  # an ArgumentError names the option; exiting would not
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                self.parser.parse_known_args(argv)
        except argparse.ArgumentError as exc:
            names = (exc.argument_name or "").split("/")
            line = next((lines[n] for n in names if n in lines), step_line)
            raise BuildFileError("build_file_invalid", self.file, line, f"{self.what}: {exc}") from None
        except SystemExit:  # argparse errors it raises no ArgumentError for
            raise BuildFileError(
                "build_file_invalid",
                self.file,
                step_line,
                f"{self.what}: the options do not parse as `medcorpus {self.parser.prog.removeprefix('medcorpus ')}`",
            ) from None

    def _fail(self, marked: Marked, detail: str) -> None:
        raise BuildFileError("build_file_invalid", self.file, marked.line, f"{self.what}: {detail}")
