"""Where a message body's links are, and the body with tracking links put in their place.

The HTML is tokenized by the stdlib's ``html.parser`` (tolerant, no regex over the
document): the ``href`` of every ``<a>`` and ``<area>`` start tag is located in the
source by re-reading that one tag with the parser's own attribute pattern, the way
``HTMLParser.parse_starttag`` reads it, and only that value's characters are replaced.
Everything else stays byte-identical: comments (Outlook's conditional blocks included),
``<script>``/``<style>`` content, entities, white space and attribute quoting.

A link is rewritten for click tracking only when its (entity-decoded, trimmed) value is
an ``http``/``https`` URL with a host and no control characters or white space. Never
rewritten: ``mailto:``, ``tel:``, ``#fragment`` and relative links, other schemes, the
unsubscribe link (:data:`UNSUBSCRIBE_PLACEHOLDER`), and tags marked with
:data:`OPT_OUT_ATTRIBUTE` (``<a href="…" data-pr-notrack>``).

``{{unsubscribe_url}}`` renders as :data:`UNSUBSCRIBE_PLACEHOLDER` when a template is
rendered; each recipient's copy replaces it with that recipient's unsubscribe URL.

Text parts keep their links unless the caller asks (``tracking.rewrite_text_links``):
there, in plain text, ``http(s)://`` runs up to white space or ``<>"`` are the links.
"""

from __future__ import annotations

import html.parser
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import unescape
from urllib.parse import urlsplit

OPT_OUT_ATTRIBUTE = "data-pr-notrack"
# A reserved name (RFC 2606 .invalid): it can never reach anyone if left in place.
UNSUBSCRIBE_PLACEHOLDER = "https://postroom.invalid/unsubscribe"

_LINK_TAGS = frozenset({"a", "area"})
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f-\x9f\\]")
_TEXT_URL = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'"
# The parser's own tokenizer patterns (see the module docstring).
_TAG_NAME: re.Pattern[str] = html.parser.tagfind_tolerant  # type: ignore[attr-defined]
_ATTRIBUTE: re.Pattern[str] = html.parser.attrfind_tolerant  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of a body to replace: a tracked link (its position) or the placeholder."""

    start: int
    end: int
    link: int | None  # position in the message's link table; None: the placeholder


@dataclass(slots=True)
class LinkTable:
    """The distinct tracked URLs of one message, in order of first appearance."""

    limit: int
    urls: list[str] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)

    def add(self, url: str) -> int | None:
        """The URL's position; None once the table is full (the link stays as it is)."""
        found = self._index.get(url)
        if found is not None:
            return found
        if len(self.urls) >= self.limit:
            return None
        self._index[url] = len(self.urls)
        self.urls.append(url)
        return self._index[url]


@dataclass(frozen=True, slots=True)
class Analysed:
    """One body part's text, what to replace in it and where its footer goes."""

    text: str
    spans: tuple[Span, ...]
    end: int  # where a pixel or footer is inserted (before </body> in HTML)

    @property
    def has_placeholder(self) -> bool:
        return any(s.link is None for s in self.spans)


def trackable(url: str) -> bool:
    """Whether ``url`` may be a redirect target: http(s), a host, nothing odd in it."""
    if not url or _BAD_URL_CHARS.search(url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def analyse_html(source: str, table: LinkTable | None) -> Analysed:
    """Find the links to track (none when ``table`` is None) and the placeholders."""
    finder = _LinkFinder(source, table)
    finder.feed(source)
    finder.close()
    spans = finder.spans + _placeholders(source)
    end = finder.body_end if finder.body_end is not None else len(source)
    return Analysed(source, tuple(sorted(spans, key=lambda s: s.start)), end)


def analyse_placeholders(source: str) -> Analysed:
    """Only the placeholders of a part, HTML or text: what :func:`analyse_html` finds with
    no link table, without parsing the HTML. For a copy that tracks no link and inserts
    nothing (so needs no ``</body>`` position), the parse is all cost: it was a third of a
    bulk delivery round's time."""
    return Analysed(source, tuple(_placeholders(source)), len(source))


def analyse_text(source: str, table: LinkTable | None) -> Analysed:
    """The placeholders of a text part, and its links when ``table`` is given."""
    spans = _placeholders(source)
    if table is not None:
        for found in _TEXT_URL.finditer(source):
            url = found.group().rstrip(_TRAILING)
            if url == UNSUBSCRIBE_PLACEHOLDER or not trackable(url):
                continue
            position = table.add(url)
            if position is not None:
                spans.append(Span(found.start(), found.start() + len(url), position))
    return Analysed(source, tuple(sorted(spans, key=lambda s: s.start)), len(source))


def render(
    part: Analysed,
    link_url: Callable[[int], str] | None,
    unsubscribe_url: str,
    insert: str = "",
) -> str:
    """The part with links replaced by ``link_url(position)`` (kept when None), the
    placeholder by ``unsubscribe_url``, and ``insert`` added at its end point."""
    pieces: list[str] = []
    at = 0
    inserted = not insert
    for span in part.spans:
        if not inserted and span.start >= part.end:
            pieces += (part.text[at : part.end], insert)
            at, inserted = part.end, True
        if span.link is None:
            pieces += (part.text[at : span.start], unsubscribe_url)
        elif link_url is not None:
            pieces += (part.text[at : span.start], link_url(span.link))
        else:
            continue
        at = span.end
    if not inserted:
        pieces += (part.text[at : part.end], insert)
        at = part.end
    pieces.append(part.text[at:])
    return "".join(pieces)


def _placeholders(source: str) -> list[Span]:
    spans: list[Span] = []
    start = source.find(UNSUBSCRIBE_PLACEHOLDER)
    while start >= 0:
        end = start + len(UNSUBSCRIBE_PLACEHOLDER)
        spans.append(Span(start, end, None))
        start = source.find(UNSUBSCRIBE_PLACEHOLDER, end)
    return spans


class _LinkFinder(html.parser.HTMLParser):
    """Collects the source spans of trackable hrefs, and where ``</body>`` starts."""

    def __init__(self, source: str, table: LinkTable | None) -> None:
        super().__init__(convert_charrefs=True)
        self._table = table
        self._line_starts = [0]
        for i, char in enumerate(source):
            if char == "\n":
                self._line_starts.append(i + 1)
        self.spans: list[Span] = []
        self.body_end: int | None = None

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: Sequence[tuple[str, str | None]]) -> None:
        if self._table is None or tag not in _LINK_TAGS:
            return
        if any(name == OPT_OUT_ATTRIBUTE for name, _ in attrs):
            return
        href = next((value for name, value in attrs if name == "href"), None)
        tag_text = self.get_starttag_text()
        if href is None or tag_text is None:
            return
        url = href.strip()
        if url == UNSUBSCRIBE_PLACEHOLDER or not trackable(url):
            return
        found = _href_value(tag_text)
        if found is None or found[2] != href:
            return  # the tag did not read back as the parser read it: leave it alone
        position = self._table.add(url)
        if position is not None:
            start = self._offset()
            self.spans.append(Span(start + found[0], start + found[1], position))

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_end = self._offset()


def _href_value(tag_text: str) -> tuple[int, int, str] | None:
    """(start, end, decoded value) of the first href's value inside one start tag,
    without its quotes; read with the loop of ``HTMLParser.parse_starttag``."""
    name = _TAG_NAME.match(tag_text, 1)
    if name is None:
        return None
    k = name.end()
    while k < len(tag_text):
        found = _ATTRIBUTE.match(tag_text, k)
        if found is None or found.end() == k:
            return None
        if found.group(1).lower() == "href" and found.group(2):
            start, end = found.span(3)
            raw = found.group(3)
            if raw[:1] in ("'", '"') and raw[:1] == raw[-1:] and len(raw) >= 2:
                start, end = start + 1, end - 1
            value = tag_text[start:end]
            return start, end, unescape(value) if value else value
        k = found.end()
    return None
