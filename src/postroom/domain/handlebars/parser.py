"""Tokens to AST: blocks matched with their ``{{else}}`` and closing tags, paths parsed.

Recursive descent over the token list, with nesting capped at :data:`MAX_NESTING` so a
hostile template cannot exhaust the interpreter's stack. Every error is a
:class:`TemplateSyntaxError` that points at the offending tag.
"""

from __future__ import annotations

import re

from postroom.domain.handlebars import lexer
from postroom.domain.handlebars.errors import TemplateSyntaxError
from postroom.domain.handlebars.nodes import Block, Expr, Literal, Mustache, Node, Path, Text

MAX_NESTING = 64
BLOCK_HELPERS = frozenset({"if", "unless", "each", "with"})
_DATA_NAMES = frozenset({"index", "first", "last", "key", "root"})
_LITERALS: dict[str, bool | None] = {"true": True, "false": False, "null": None, "undefined": None}

# The inside of a tag: strings, numbers, block params, paths; anything else is refused.
_EXPR_TOKEN = re.compile(
    r"""\s+
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<params>as\s+\|(?P<names>[^|]*)\|)
    | (?P<number>-?\d+(?:\.\d+)?)(?=\s|$)
    | (?P<path>(?:[^\s"'()=|\[\]]|\[[^\]]*\])+)
    | (?P<bad>.)""",
    re.VERBOSE | re.DOTALL,
)
# A Handlebars identifier: anything but whitespace and its punctuation.
_ID = re.compile(r"[^\s!\"#%-,./;->@\[-\^`{-~]+")
_SEGMENT = re.compile(r"\[([^\]]*)\]|([^./\[\]]+)")
_NAME = re.compile(r"[^\s|]+")


def parse(source: str) -> tuple[Node, ...]:
    """The AST of ``source``; raises TemplateSyntaxError."""
    tokens = [
        t for t in lexer.tokenize(source) if not (isinstance(t, lexer.Tag) and t.kind == "comment")
    ]
    parser = _Parser(source, tokens)
    nodes, end = parser.program(0)
    if end is not None:
        what = "{{else}}" if end.kind == "else" else f"'{{{{/{end.body.strip()}}}}}'"
        raise TemplateSyntaxError(f"{what} without an opening block", source, end.position)
    return nodes


class _Parser:
    def __init__(self, source: str, tokens: list[lexer.Token]) -> None:
        self._source, self._tokens, self._next = source, tokens, 0

    def _error(self, message: str, position: int) -> TemplateSyntaxError:
        return TemplateSyntaxError(message, self._source, position)

    def program(self, depth: int) -> tuple[tuple[Node, ...], lexer.Tag | None]:
        """Nodes up to the next ``{{else}}`` or closing tag (returned) or the end (None)."""
        nodes: list[Node] = []
        texts: list[str] = []  # adjacent text, joined once (no quadratic concatenation)
        end: lexer.Tag | None = None
        while self._next < len(self._tokens):
            token = self._tokens[self._next]
            self._next += 1
            if isinstance(token, lexer.Text):
                texts.append(token.value)
                continue
            _flush(nodes, texts)
            if token.kind in ("mustache", "raw"):
                nodes.append(self._mustache(token))
            elif token.kind in ("open", "inverse_open"):
                nodes.append(self._block(token, depth + 1))
            else:
                end = token
                break
        _flush(nodes, texts)
        return tuple(nodes), end

    def _mustache(self, tag: lexer.Tag) -> Mustache:
        exprs, block_params = _expression(tag.body, self._source, tag.position)
        escape = tag.kind == "mustache"
        if block_params:
            raise self._error("block params are only allowed on blocks", tag.position)
        if len(exprs) == 1:
            return Mustache(exprs[0][0], escape)
        (head, name), params = exprs[0], tuple(e for e, _ in exprs[1:])
        if name == "lookup" and isinstance(head, Path) and len(params) == 2:
            return Mustache(Literal(None), escape, "lookup", params)
        raise self._error(f"unknown helper '{name}'", tag.position)

    def _block(self, tag: lexer.Tag, depth: int, closer: str | None = None) -> Block:
        if depth > MAX_NESTING:
            raise self._error(f"blocks nested more than {MAX_NESTING} deep", tag.position)
        helper, param, names, name = self._opening(tag)
        program, end = self.program(depth)
        inverse: tuple[Node, ...] = ()
        if end is not None and end.kind == "else":
            chained = end.body.strip()
            if chained:  # {{else if x}}: a block in the inverse that shares our closing tag
                opening = lexer.Tag("open", chained, end.position, False, False)
                inverse = (self._block(opening, depth + 1, closer or name),)
                return _oriented(tag, Block(helper, param, program, inverse, names))
            inverse, end = self.program(depth)
            if end is not None and end.kind == "else":
                raise self._error("a block has more than one {{else}}", end.position)
        if end is None:
            raise self._error(f"'{{{{#{closer or name}}}}}' is not closed", tag.position)
        closing = end.body.strip()
        if closing != (closer or name):
            raise self._error(
                f"'{{{{/{closing}}}}}' does not match '{{{{#{closer or name}}}}}'", end.position
            )
        return _oriented(tag, Block(helper, param, program, inverse, names))

    def _opening(self, tag: lexer.Tag) -> tuple[str, Expr, tuple[str, ...], str]:
        """Helper, argument, block params and name (for the closing tag) of an opening."""
        exprs, names = _expression(tag.body, self._source, tag.position)
        (head, name), args = exprs[0], exprs[1:]
        if isinstance(head, Path) and name in BLOCK_HELPERS:
            if len(args) != 1:
                raise self._error(f"'#{name}' takes exactly one argument", tag.position)
            most = {"each": 2, "with": 1}.get(name, 0)
            if len(names) > most:
                raise self._error(f"'#{name}' takes at most {most} block params", tag.position)
            return name, args[0][0], names, name
        if args:
            raise self._error(f"unknown helper '{name}'", tag.position)
        if names:
            raise self._error("block params need 'each' or 'with'", tag.position)
        return "section", head, (), name


def _oriented(tag: lexer.Tag, block: Block) -> Block:
    """``{{^x}}…{{else}}…{{/x}}`` renders its first part when x is falsy: swap the parts."""
    if tag.kind != "inverse_open":
        return block
    return Block(block.helper, block.param, block.inverse, block.program, block.block_params)


def _flush(nodes: list[Node], texts: list[str]) -> None:
    text = "".join(texts)
    texts.clear()
    if text:
        nodes.append(Text(text))


def _expression(
    body: str, source: str, position: int
) -> tuple[list[tuple[Expr, str]], tuple[str, ...]]:
    """The expressions of a tag with their written form, and its block params."""
    exprs: list[tuple[Expr, str]] = []
    names: tuple[str, ...] = ()
    for match in _EXPR_TOKEN.finditer(body):
        kind, text = match.lastgroup, match.group()
        if kind is None:
            continue
        if names:
            raise TemplateSyntaxError("nothing may follow block params", source, position)
        if kind == "string":
            quote = text[0]
            exprs.append((Literal(text[1:-1].replace("\\" + quote, quote)), text))
        elif kind == "number":
            exprs.append((Literal(float(text) if "." in text else int(text)), text))
        elif kind == "path":
            exprs.append((_path(text, source, position), text))
        elif kind == "params":
            names = tuple(_NAME.findall(match.group("names")))
            if not names or not all(_ID.fullmatch(n) for n in names):
                raise TemplateSyntaxError("invalid block params", source, position)
        else:
            raise TemplateSyntaxError(_refusal(text), source, position)
    if not exprs:
        raise TemplateSyntaxError("empty tag", source, position)
    return exprs, names


def _refusal(char: str) -> str:
    if char == "=":
        return "hash arguments are not supported"
    if char == "(":
        return "subexpressions are not supported"
    return f"unexpected {char!r} in tag"


def _path(text: str, source: str, position: int) -> Expr:
    """Parse a path (or a true/false/null literal) as written in a tag."""
    if text in _LITERALS:
        return Literal(_LITERALS[text])
    data = text.startswith("@")
    rest, depth, scoped = text[data:], 0, False
    while rest.startswith("../") or rest == "..":
        depth, rest = depth + 1, rest[3:]
    if rest.startswith("./") or rest == ".":
        scoped, rest = True, rest[2:]
    parts = _segments(rest, text, source, position)
    if parts[:1] == ["this"] and not rest.startswith("["):
        scoped, parts = True, parts[1:]
    if data and (depth or scoped or not parts or parts[0] not in _DATA_NAMES):
        raise TemplateSyntaxError(f"unsupported data variable '{text}'", source, position)
    return Path(tuple(parts), depth, data, scoped)


def _segments(rest: str, text: str, source: str, position: int) -> list[str]:
    parts: list[str] = []
    at = 0
    while at < len(rest):
        match = _SEGMENT.match(rest, at)
        plain = match.group(2) if match else None
        if match is None or (plain is not None and not _ID.fullmatch(plain)):
            raise TemplateSyntaxError(f"invalid path '{text}'", source, position)
        parts.append(match.group(1) if plain is None else plain)
        at = match.end()
        if at < len(rest):
            if rest[at] not in "./" or at + 1 == len(rest):
                raise TemplateSyntaxError(f"invalid path '{text}'", source, position)
            at += 1
    return parts
