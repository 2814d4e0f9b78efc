"""A readable text/plain part made from an HTML body (for mail sent with HTML only).

Postroom's own rendering rules over the stdlib's tolerant ``html.parser``: paragraphs
and headings become blank-line-separated blocks, ``<br>`` a line break, list items
"- " or "1. " lines, links "text (url)", images their alt text, table cells are
separated by spaces and rows by lines; ``<head>``, ``<style>`` and ``<script>`` are
dropped and whitespace collapses as a browser would (except in ``<pre>``).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIPPED = frozenset({"head", "style", "script", "title", "template"})
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote", "pre", "dl"}
)
_LINES = frozenset(
    {"div", "tr", "li", "dt", "dd", "section", "article", "header", "footer", "address",
     "center", "form", "hr", "caption", "nav", "main", "aside", "figure"}
)  # fmt: skip
_CELLS = frozenset({"td", "th"})
_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")
_LINKABLE = ("http:", "https:", "mailto:", "tel:", "ftp:")


def html_to_text(html: str) -> str:
    """The text rendering of ``html`` (never raises on malformed markup)."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    return parser.text()


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._break = 0  # line breaks owed before the next text
        self._skip = 0  # depth inside elements whose content is not shown
        self._pre = 0
        self._lists: list[list[int]] = []  # per open list: [ordered, counter]
        self._links: list[tuple[str | None, int]] = []

    # --- output -----------------------------------------------------------------------

    def _owe(self, breaks: int) -> None:
        self._break = max(self._break, breaks)

    def _emit(self, text: str) -> None:
        if not text:
            return
        if self._out and self._break:
            self._out.append("\n" * self._break)
        self._break = 0
        self._out.append(text)

    def _at_line_start(self) -> bool:
        return not self._out or self._break > 0 or self._out[-1].endswith("\n")

    def text(self) -> str:
        lines = (line.rstrip() for line in "".join(self._out).split("\n"))
        body = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")
        return body + "\n" if body else ""

    # --- parser callbacks -------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif self._skip:
            return
        elif tag == "br":
            self._emit("\n")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self._data(alt)
        elif tag == "a":
            self._links.append((dict(attrs).get("href"), len(self._out)))
        elif tag in ("ul", "ol"):
            self._owe(1 if self._lists else 2)
            self._lists.append([tag == "ol", 0])
        elif tag == "li":
            self._list_item()
        else:
            self._block_start(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "img", "hr"):
            self.handle_endtag(tag)

    def _block_start(self, tag: str) -> None:
        if tag == "pre":
            self._pre += 1
        if tag in _PARAGRAPHS:
            self._owe(2)
        elif tag in _LINES:
            self._owe(1)
        if tag == "hr":
            self._emit("----")
            self._owe(1)

    def _list_item(self) -> None:
        self._owe(1)
        ordered, count = self._lists[-1] if self._lists else (False, 0)
        if self._lists:
            self._lists[-1][1] = count + 1
        indent = "  " * max(len(self._lists) - 1, 0)
        self._emit(f"{indent}{count + 1}. " if ordered else f"{indent}- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(self._skip - 1, 0)
        elif self._skip:
            return
        elif tag == "a" and self._links:
            self._link_end(*self._links.pop())
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._owe(1 if self._lists else 2)
        elif tag in _CELLS:
            self._emit(" ")
        elif tag in _PARAGRAPHS or tag in _LINES:
            if tag == "pre":
                self._pre = max(self._pre - 1, 0)
            self._owe(2 if tag in _PARAGRAPHS else 1)

    def _link_end(self, href: str | None, start: int) -> None:
        if not href or not href.strip().lower().startswith(_LINKABLE):
            return
        href = href.strip()
        label = "".join(self._out[start:]).strip()
        shown = href[7:] if href.lower().startswith("mailto:") else href
        if not label:
            self._data(shown)
        elif label != shown and label != href:
            self._emit(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._data(data)

    def _data(self, data: str) -> None:
        if self._pre:
            self._emit(data)
            return
        text = _SPACES.sub(" ", data)
        if self._at_line_start() or (self._out and self._out[-1].endswith(" ")):
            text = text.lstrip(" ")
        self._emit(text)
