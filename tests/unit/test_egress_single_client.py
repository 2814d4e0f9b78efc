"""Outbound HTTP has one way out: only postroom.services.egress may import an HTTP client.

reliability.md §3.5/§3.13: SSRF advisories recur when one call site has the address
filter and a sibling does not. Any new outbound HTTP must go through EgressClient.
"""

from __future__ import annotations

import ast
from pathlib import Path

import postroom

HTTP_CLIENTS = {
    "httpx",
    "httpcore",
    "requests",
    "urllib3",
    "aiohttp",
    "http.client",
    "urllib.request",
}
# cli/client.py is the operator's client of a Postroom's own API (`postroom remote`,
# `postroom mcp`, the pytest plugin): the URL is the operator's, never a recipient's or a
# customer's, and no server code imports it (the import-linter layers keep it above).
ALLOWED = {"services/egress.py", "cli/client.py"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def is_http_client(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in HTTP_CLIENTS)


def test_only_the_egress_module_imports_an_http_client() -> None:
    root = Path(postroom.__file__).parent
    offenders = {
        str(path.relative_to(root)): sorted(filter(is_http_client, imported_modules(path)))
        for path in root.rglob("*.py")
        if str(path.relative_to(root)) not in ALLOWED
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_the_scan_sees_the_egress_module_import() -> None:
    path = Path(postroom.__file__).parent / "services" / "egress.py"
    assert any(is_http_client(module) for module in imported_modules(path))
