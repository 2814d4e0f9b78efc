"""docs/compatibility.md's "Official SDK coverage" tables tell the truth.

- The Python table lists exactly the public methods of the installed official SDK, each
  with the request it makes (tests/sdkinventory.py records them). The SDK is not pinned
  (pyproject: ``mailtrap>=2.11``): under the version the section names, the lists must be
  equal; under another, a method the table lists must still exist and make the same
  request, and the methods it adds are named in a skip until the table is brought up to
  that version.
- Every row of both tables says "works" (the email campaigns, the last methods Postroom
  lacked, are implemented) and names test files that exist and call the method: under
  tests/ for Python, scripts under tests/node for Node.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

from sdkinventory import python_sdk_methods

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "compatibility.md"
ROW = re.compile(r"^\| `([\w.]+)` \| `([A-Z]+) (\S+)` \| ([^|]+) \| ([^|]+) \|$")


def _table(heading: str) -> dict[str, tuple[str, str, str, str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Official SDK coverage", 1)[1].split("\n## ", 1)[0]
    part = section.split(f"### {heading}", 1)[1].split("\n### ", 1)[0]
    rows: dict[str, tuple[str, str, str, str]] = {}
    for line in part.splitlines():
        match = ROW.match(line)
        if match:
            name, verb, path, tested, status = (g.strip() for g in match.groups())
            assert name not in rows, f"{name} listed twice"
            rows[name] = (verb, path, tested, status)
    return rows


def _calls(files: str, base: Path, method: str) -> None:
    for name in files.split(","):
        path = base / name.strip().split(" ")[0]
        assert path.is_file(), f"{method}: {path} does not exist"
        assert f".{method}(" in path.read_text(encoding="utf-8"), f"{path} never calls {method}"


def _documented_version() -> str:
    found = re.search(r"Python SDK `mailtrap` ([\d.]+)", DOC.read_text(encoding="utf-8"))
    assert found, "the section names the SDK version it lists"
    return found.group(1)


def test_the_python_table_is_the_installed_sdk() -> None:
    rows = _table("Python SDK")
    methods = python_sdk_methods()
    for name, (_, _, tested, status) in rows.items():
        assert name in methods, f"{name} is no longer in the SDK"
        assert rows[name][:2] == methods[name], name
        assert status == "works", (name, status)
        _calls(tested, ROOT / "tests", name.rsplit(".", 1)[1])
    unlisted = sorted(set(methods) - set(rows))
    if unlisted and version("mailtrap") != _documented_version():
        pytest.skip(f"mailtrap {version('mailtrap')} adds methods the table lacks: {unlisted}")
    assert unlisted == []


def test_the_node_table_names_scripts_that_make_the_calls() -> None:
    rows = _table("Node SDK")
    assert len(rows) > 100
    for name, (_, _, tested, status) in rows.items():
        assert status.startswith("works"), (name, status)
        _calls(tested, ROOT / "tests" / "node", name.rsplit(".", 1)[-1])
