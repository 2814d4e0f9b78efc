"""Split a template into text and tags, then apply Handlebars' whitespace rules.

One pass with ``str.find`` (linear in the source, no backtracking regular expression
over the whole text). Tags are classified by their first character; their inside is
parsed later by :mod:`.parser`. Two whitespace rules are applied here, as Handlebars
does: a block tag, ``{{else}}`` or comment alone on its line ("standalone") takes the
line's indentation and line break with it, and ``~`` strips all whitespace on its side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from postroom.domain.handlebars.errors import TemplateSyntaxError

# Bounds on what one template may hold, so that compiling (linear, ~10 µs per tag) stays
# well under a second whatever a client saves. Real templates are far below both.
MAX_TAGS = 50_000
MAX_TAG_CHARS = 1000

_TAG_END = re.compile(r"(~?)\}\}")
_RAW_END = re.compile(r"\}(~?)\}\}")
_LONG_COMMENT_END = re.compile(r"--(~?)\}\}")
_ELSE = re.compile(r"else(?:\s|$)")
# Tags that vanish from the output and so may stand alone on a line.
_STANDALONE = frozenset({"open", "inverse_open", "close", "else", "comment"})


@dataclass(slots=True)
class Text:
    """Literal output; ``original`` is kept for the standalone test."""

    value: str
    original: str
    position: int


@dataclass(frozen=True, slots=True)
class Tag:
    """A ``{{…}}``: kind is open, inverse_open, close, else, mustache, raw or comment."""

    kind: str
    body: str
    position: int
    strip_before: bool
    strip_after: bool


Token = Text | Tag


def tokenize(source: str) -> list[Token]:
    """The template's tokens, whitespace rules applied; raises TemplateSyntaxError."""
    tokens: list[Token] = []
    text_start = scan = 0
    opened = 0
    while (start := source.find("{{", scan)) >= 0:
        opened += 1
        if opened > MAX_TAGS:
            raise TemplateSyntaxError(f"more than {MAX_TAGS} tags", source, start)
        escaped_backslash = start > 1 and source[start - 2 : start] == "\\\\"
        if start > 0 and source[start - 1] == "\\" and not escaped_backslash:
            # \{{ is a literal "{{": drop the backslash and keep scanning as text.
            _add_text(tokens, source[text_start : start - 1], text_start)
            text_start, scan = start, start + 2
            continue
        # \\{{ is a literal backslash followed by a real tag.
        _add_text(tokens, source[text_start : start - escaped_backslash], text_start)
        tag, end = _tag(source, start)
        tokens.append(tag)
        text_start = scan = end
    _add_text(tokens, source[text_start:], text_start)
    _strip_standalone(tokens)
    _strip_tildes(tokens)
    return tokens


def _add_text(tokens: list[Token], value: str, position: int) -> None:
    if value:
        tokens.append(Text(value, value, position))


def _unclosed(source: str, start: int) -> TemplateSyntaxError:
    return TemplateSyntaxError("unclosed '{{'", source, start)


def _tag(source: str, start: int) -> tuple[Tag, int]:
    """The tag opening at ``start`` and the index just after it."""
    inner = start + 2
    if source.startswith("{{", inner):
        raise TemplateSyntaxError("raw blocks '{{{{' are not supported", source, start)
    strip_before = source.startswith("~", inner)
    inner += strip_before
    if source.startswith("!--", inner):
        return _closed(source, start, _LONG_COMMENT_END, inner + 3, "comment", strip_before)
    if source.startswith("!", inner):
        return _closed(source, start, _TAG_END, inner + 1, "comment", strip_before)
    if source.startswith("{", inner):
        return _closed(source, start, _RAW_END, inner + 1, "raw", strip_before)
    match = _TAG_END.search(source, inner)
    if match is None:
        raise _unclosed(source, start)
    if match.start() - inner > MAX_TAG_CHARS:
        raise TemplateSyntaxError(f"tag longer than {MAX_TAG_CHARS} characters", source, start)
    kind, body = _classify(source[inner : match.start()], source, start)
    return Tag(kind, body, start, strip_before, bool(match.group(1))), match.end()


def _closed(
    source: str, start: int, end: re.Pattern[str], inner: int, kind: str, strip_before: bool
) -> tuple[Tag, int]:
    match = end.search(source, inner)
    if match is None:
        raise _unclosed(source, start)
    body = source[inner : match.start()] if kind == "raw" else ""
    if len(body) > MAX_TAG_CHARS:
        raise TemplateSyntaxError(f"tag longer than {MAX_TAG_CHARS} characters", source, start)
    return Tag(kind, body, start, strip_before, bool(match.group(1))), match.end()


def _classify(body: str, source: str, start: int) -> tuple[str, str]:
    """The kind of an ordinary tag from its first character, and the rest of its body."""
    text = body.lstrip()
    first, rest = text[:1], text[1:]
    if first == "#":
        if rest[:1] in (">", "*"):
            raise TemplateSyntaxError(
                "partial blocks and decorators are not supported", source, start
            )
        return "open", rest
    if first == "/":
        return "close", rest
    if first == "^":
        return ("else", "") if not rest.strip() else ("inverse_open", rest)
    if first == ">":
        raise TemplateSyntaxError("partials are not supported", source, start)
    if first == "&":
        return "raw", rest
    if first in ("{", "}"):
        raise TemplateSyntaxError("unbalanced '{' in tag", source, start)
    if _ELSE.match(text):
        return "else", text[4:]
    return "mustache", text


def _strip_standalone(tokens: list[Token]) -> None:
    """Remove the indentation and line break around block tags alone on their line.

    Decided on the original text (as Handlebars does), so two standalone tags on
    consecutive lines are both recognised even after the first has been stripped.
    """
    last = len(tokens) - 1
    for index, token in enumerate(tokens):
        if not isinstance(token, Tag) or token.kind not in _STANDALONE:
            continue
        before = tokens[index - 1] if index > 0 else None
        after = tokens[index + 1] if index < last else None
        if not (_line_starts(before, index - 1 == 0) and _line_ends(after, index + 1 == last)):
            continue
        if isinstance(before, Text):
            before.value = before.value[: before.value.rfind("\n") + 1]
        if isinstance(after, Text):
            newline = after.value.find("\n")
            after.value = after.value[newline + 1 :] if newline >= 0 else ""


def _line_starts(token: Token | None, first: bool) -> bool:
    if token is None:
        return True
    if not isinstance(token, Text):
        return False
    head, newline, tail = token.original.rpartition("\n")
    return (bool(newline) or first) and not tail.strip(" \t\r")


def _line_ends(token: Token | None, last: bool) -> bool:
    if token is None:
        return True
    if not isinstance(token, Text):
        return False
    head, newline, _ = token.original.partition("\n")
    return (bool(newline) or last) and not head.strip(" \t\r")


def _strip_tildes(tokens: list[Token]) -> None:
    for index, token in enumerate(tokens):
        if not isinstance(token, Tag):
            continue
        if token.strip_before and index > 0 and isinstance(tokens[index - 1], Text):
            before = tokens[index - 1]
            assert isinstance(before, Text)
            before.value = before.value.rstrip()
        if token.strip_after and index + 1 < len(tokens) and isinstance(tokens[index + 1], Text):
            after = tokens[index + 1]
            assert isinstance(after, Text)
            after.value = after.value.lstrip()
