"""The links of a message's bodies, as a reader would follow them (the pytest plugin's
``Mail.links`` and the MCP server's ``read_sandbox_message``)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Links in a text body: http(s) URLs up to whitespace or a closing bracket/quote.
_TEXT_URL = re.compile(r"https?://[^\s<>\"')\]]+")


class _Links(HTMLParser):
    """Every ``href`` of an ``<a>`` or ``<area>``, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("a", "area"):
            for name, value in attrs:
                if name == "href" and value:
                    self.links.append(value.strip())


def html_links(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.links


def text_links(text: str) -> list[str]:
    # A URL at the end of a sentence does not include the full stop.
    return [m.group(0).rstrip(".,;:") for m in _TEXT_URL.finditer(text)]


def links_of(html: str, text: str) -> list[str]:
    """The HTML body's links, else (no HTML, or no link in it) the text body's URLs."""
    return (html_links(html) if html else []) or text_links(text)
