"""A YAML file as plain values that remember their line: errors about a build file name the line.

PyYAML composes the file into nodes, which carry marks; `Marked` keeps the line of every value and of
every mapping key. Scalars are constructed exactly as `yaml.safe_load` would construct them (merge keys
and anchors included), so a value means the same here as anywhere else YAML is read.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from schemas.errors import ReasonError


class BuildFileError(ReasonError, ValueError):
    """A build file that cannot be used; the message starts with `FILE:LINE:`."""

    def __init__(self, reason: str, file: str, line: int, detail: str) -> None:
        super().__init__(reason, f"{file}:{line}: {detail}")
        self.file = file
        self.line = line


@dataclass
class Marked:
    """A value from the file and the (1-based) line it starts on. Mappings hold `dict[str, Marked]`
    (with `key_lines`), sequences `list[Marked]`, scalars their Python value."""

    value: Any
    line: int
    key_lines: dict[str, int] = field(default_factory=dict)

    @property
    def plain(self) -> Any:
        """The value without marks, as `yaml.safe_load` gives it."""
        if isinstance(self.value, dict):
            return {k: v.plain for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain for v in self.value]
        return self.value


def load(text: str, file: str) -> Marked:
    """The file's single document; `BuildFileError` (`build_file_invalid`) when it does not parse."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise BuildFileError("build_file_invalid", file, 1, "the file is empty")
        return _marked(loader, node, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise BuildFileError(
            "build_file_invalid", file, line, f"not valid YAML: {exc.problem or exc.context}"
        ) from None
    finally:
        loader.dispose()


def _marked(loader: yaml.SafeLoader, node: yaml.Node, file: str) -> Marked:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merges as safe_load does
        values: dict[str, Marked] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise BuildFileError(
                    "build_file_invalid", file, key_line, f"a key must be a name, not {key!r}"
                )
            if key in values:
                # safe_load keeps the last silently; a build file with two values for one key is a mistake
                raise BuildFileError(
                    "build_file_invalid",
                    file,
                    key_line,
                    f"`{key}` is given twice (first on line {key_lines[key]})",
                )
            values[key] = _marked(loader, value_node, file)
            key_lines[key] = key_line
        return Marked(values, line, key_lines)
    if isinstance(node, yaml.SequenceNode):
        return Marked([_marked(loader, item, file) for item in node.value], line)
    return Marked(loader.construct_object(node, deep=True), line)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the closest choice (dashes and underscores count as the same), else ''."""
    choices = sorted(set(choices))
    swapped = [c for c in choices if c.replace("_", "-") == word.replace("_", "-")]
    close = swapped or difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""
