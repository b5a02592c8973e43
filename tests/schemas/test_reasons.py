"""One registry of reason codes: the code uses no code it lacks, and the README's table is its own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from schemas.reasons import END, ERROR_REASONS, REJECT_REASONS, START, markdown_table

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "connectors", "curation", "models", "pipelines")
CODE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")


def _text(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def codes_in_source() -> dict[str, str]:
    """Codes written as literals where reasons are made: `reason=...`, the first argument of an error
    class (`ImageError("image_decode", ...)`), `ManifestRowError`'s reason, `count(stage,
    "rejected.<code>")`, and the values of `*_REASONS` maps and `*ERROR`/`NO_CAPTION` constants."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "reasons.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
                literals: list[str | None] = []
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    literals += [_text(k.value) for k in node.keywords if k.arg == "reason"]
                    if node.args and (name.endswith("Error") or name == "error"):
                        literals.append(_text(node.args[0]))
                    if name == "ManifestRowError" and len(node.args) >= 3:
                        literals.append(_text(node.args[2]))
                    if name == "count" and len(node.args) >= 2 and (_text(node.args[1]) or "").count("."):
                        literals.append((_text(node.args[1]) or "").split(".", 1)[1])
                if isinstance(node, ast.Assign):
                    names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                    if any("REASONS" in n for n in names) and isinstance(node.value, ast.Dict):
                        literals += [_text(v) for v in node.value.values]
                    if any(n.endswith("_ERROR") or n == "NO_CAPTION" for n in names):
                        literals.append(_text(node.value))
                for literal in literals:
                    if literal and CODE.match(literal):
                        found.setdefault(literal, where)
    return found


def test_every_code_in_the_source_is_registered():
    found = codes_in_source()
    registered = REJECT_REASONS.keys() | ERROR_REASONS.keys()
    missing = {code: where for code, where in found.items() if code not in registered}
    assert not missing, f"add these to schemas/reasons.py: {missing}"
    assert len(found) > 60  # the scan sees the codes (a broken scan would pass vacuously)


def test_every_registered_code_has_a_meaning():
    for code, meaning in {**REJECT_REASONS, **ERROR_REASONS}.items():
        assert CODE.match(code) or code in ("duplicate", "retracted", "usage"), code
        assert len(meaning) > 10, code


def test_the_readme_table_is_generated_from_the_registry():
    readme = (ROOT / "README.md").read_text()
    assert START in readme and END in readme
    table = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert table == markdown_table(), "run: .venv/bin/python -m schemas.reasons --update-readme"
