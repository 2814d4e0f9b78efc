"""HTML analysis of a captured message: which of its HTML and CSS features major email
clients do not support, from the caniemail data set.

The data (src/postroom/data/caniemail.json, derived from caniemail.com's data as shipped
by the npm package ``caniemail``, MIT: see caniemail.LICENSE there and
scripts/vendor-caniemail) lists per feature how to find it (``match``) and the clients
whose latest test found it unsupported or partly supported. This module reads the HTML
body once with the stdlib's tolerant parser, collects what it uses (elements,
attributes, input types, links, images, and from style attributes and ``<style>``
sheets the properties, values, at-rules, media features, selectors, functions and
units) with the line each first appears on, and reports every feature that is used and
not supported everywhere: the contract's ``{"error_line", "rule_name", "email_clients":
{"desktop", "mobile", "web"}}``.
"""

from __future__ import annotations

import functools
import json
import re
from html.parser import HTMLParser
from importlib import resources
from typing import Any

Use = tuple[str, str]  # (kind, name) as the data's ``match`` has them

_IMAGE_EXT = re.compile(r"\.([a-z0-9]{2,5})(?:[?#]|$)")
_DATA_IMAGE = re.compile(r"^\s*data:image/([a-z0-9.+-]+)", re.IGNORECASE)
_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_DECLARATION = re.compile(r"(--[\w-]+|-?[a-zA-Z][\w-]*)\s*:([^;]*)")
_FUNCTION = re.compile(r"([a-zA-Z][\w-]*)\(")
_UNIT = re.compile(r"(?<![\w.#-])[+-]?(?:\d+\.?\d*|\.\d+)(%|[a-zA-Z]+)\b|(?<=\d)%")
_WORD = re.compile(r"[a-zA-Z][\w-]*")
_PSEUDO = re.compile(r"::?[a-zA-Z][\w-]*")
_MEDIA_FEATURE = re.compile(r"\(\s*(?:-webkit-)?(?:min-|max-)?([a-zA-Z][\w-]*)\s*[:)]")
_SELECTOR_MARKS = {
    "class": re.compile(r"\.[a-zA-Z_-]"),
    "id": re.compile(r"#[a-zA-Z_-]"),
    "universal": re.compile(r"\*"),
    "attribute": re.compile(r"\["),
    "child": re.compile(r">"),
    "adjacent-sibling": re.compile(r"\+"),
    "general-sibling": re.compile(r"~(?!=)"),
    "grouping": re.compile(r","),
}
GROUPS = ("desktop", "mobile", "web")


@functools.cache
def data() -> dict[str, Any]:
    """The vendored caniemail data (read once per process)."""
    text = (resources.files("postroom") / "data" / "caniemail.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


class _Uses:
    """What a document uses, each with the first line it appears on."""

    def __init__(self) -> None:
        self.first: dict[Use, int] = {}

    def add(self, kind: str, name: str, line: int) -> None:
        self.first.setdefault((kind, name.lower()), line)


def _line_at(text: str, pos: int, base: int) -> int:
    return base + text.count("\n", 0, pos)


def _declarations(block: str, block_at: int, text: str, base: int, uses: _Uses) -> None:
    for m in _DECLARATION.finditer(block):
        line = _line_at(text, block_at + m.start(), base)
        name, value = m[1].lower(), m[2]
        if name.startswith("--"):
            uses.add("special", "css-variable", line)
            continue
        uses.add("property", name, line)
        if "!important" in value.replace(" ", "").lower():
            uses.add("special", "important", line)
        for word in _WORD.findall(value):
            uses.add("keyword", word, line)
            uses.add("value", f"{name}:{word}", line)
        for function in _FUNCTION.findall(value):
            uses.add("function", function, line)
            if function.lower() == "var":
                uses.add("special", "css-variable", line)
        for number_unit in _UNIT.finditer(value):
            uses.add("unit", number_unit[1] or "%", line)


def _selectors(prelude: str, line: int, uses: _Uses) -> None:
    for pseudo in _PSEUDO.findall(prelude):
        uses.add("pseudo", pseudo, line)
    plain = _PSEUDO.sub("", re.sub(r"\[[^\]]*\]", "[]", prelude))
    for name, mark in _SELECTOR_MARKS.items():
        if mark.search(plain):
            uses.add("selector", name, line)


def _at_rule(prelude: str, line: int, uses: _Uses) -> None:
    name = _WORD.match(prelude.strip().lstrip("@"))
    if name is None:
        return
    uses.add("at-rule", name[0], line)
    if name[0].lower() == "media":
        for feature in _MEDIA_FEATURE.findall(prelude):
            uses.add("media", feature, line)


def stylesheet(text: str, base: int, uses: _Uses) -> None:
    """Collect what a ``<style>`` sheet uses; ``base`` is the line it starts on."""
    for comment in _COMMENT.finditer(text):
        uses.add("special", "css-comment", _line_at(text, comment.start(), base))
    # Comments become blanks of the same length (offsets and lines stay right).
    text = _COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m[0]), text)
    stack: list[str] = []
    start = 0
    for pos, char in enumerate(text):
        if char == "{":
            prelude = text[start:pos]
            line = _line_at(text, start + len(prelude) - len(prelude.lstrip()), base)
            is_at = prelude.strip().startswith("@")
            if is_at:
                _at_rule(prelude, line, uses)
            elif prelude.strip():
                _selectors(prelude, line, uses)
            stack.append("at" if is_at else "rule")
            start = pos + 1
        elif char == "}":
            if stack and stack[-1] == "rule":
                _declarations(text[start:pos], start, text, base, uses)
            if stack:
                stack.pop()
            start = pos + 1
        elif char == ";" and (not stack or stack[-1] == "at"):
            prelude = text[start:pos]
            if prelude.strip().startswith("@"):  # @import, @charset
                where = start + len(prelude) - len(prelude.lstrip())
                _at_rule(prelude, _line_at(text, where, base), uses)
                start = pos + 1


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.uses = _Uses()
        self._in_style = False

    def handle_decl(self, decl: str) -> None:
        if decl.lower().startswith("doctype"):
            self.uses.add("special", "doctype", self.getpos()[0])

    def handle_comment(self, data: str) -> None:
        self.uses.add("special", "html-comment", self.getpos()[0])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line, uses = self.getpos()[0], self.uses
        values = {name.lower(): value or "" for name, value in attrs}
        uses.add("element", tag, line)
        for name in values:
            uses.add("attribute", name, line)
        if tag in ("input", "button"):
            kind = values.get("type", "").strip().lower() or (
                "submit" if tag == "button" else "text"
            )
            uses.add("input", f"{tag}:{kind}", line)
        href = values.get("href", "").strip().lower()
        if tag == "a" and href.startswith("mailto:"):
            uses.add("special", "mailto", line)
        if tag == "a" and href.startswith("#") and len(href) > 1:
            uses.add("special", "anchor", line)
        if tag == "meta" and values.get("name", "").strip().lower() == "color-scheme":
            uses.add("special", "meta-color-scheme", line)
        if tag == "img":
            self._image(values.get("src", ""), line)
        if "style" in values:
            # A style attribute is one declaration block.
            style = values["style"]
            _declarations(style, 0, style, line, uses)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            stylesheet(data, self.getpos()[0], self.uses)

    def _image(self, src: str, line: int) -> None:
        inline = _DATA_IMAGE.match(src)
        if inline:
            self.uses.add("special", "data-image", line)
            self.uses.add("image", inline[1].split("+")[0], line)
        elif ext := _IMAGE_EXT.search(src.strip().lower()):
            self.uses.add("image", ext[1], line)


def _used_at(match: dict[str, Any], first: dict[Use, int]) -> int | None:
    kind, names = match["kind"], [n.lower() for n in match["names"]]
    if kind == "value":
        wanted = [("value", f"{n}:{v}") for n in names for v in match["values"]]
    else:
        wanted = [(kind, n) for n in names]
    lines = [first[w] for w in wanted if w in first]
    return min(lines) if lines else None


def analyze(html: str) -> list[dict[str, Any]]:
    """The contract's ``errors``: each used feature some major client lacks, by line."""
    collector = _Collector()
    collector.feed(html)
    collector.close()
    first = collector.uses.first
    clients = data()["clients"]
    found: list[dict[str, Any]] = []
    for feature in data()["features"]:
        line = _used_at(feature["match"], first)
        if line is None:
            continue
        groups: dict[str, list[str]] = {group: [] for group in GROUPS}
        for key in feature["unsupported"]:
            groups[clients[key]["group"]].append(clients[key]["name"])
        for key in feature["partial"]:
            groups[clients[key]["group"]].append(clients[key]["name"] + " (partial)")
        found.append({"error_line": line, "rule_name": feature["title"], "email_clients": groups})
    found.sort(key=lambda e: (e["error_line"], e["rule_name"]))
    return found


def report(html: str) -> dict[str, Any]:
    """The contract's ``report`` object for an HTML body ("" when the message has none)."""
    return {"status": "success", "errors": analyze(html) if html.strip() else []}
