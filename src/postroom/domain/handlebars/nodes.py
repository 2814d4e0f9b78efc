"""The AST: what a template means, independent of how it is rendered."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Path:
    """A variable reference: ``a.b``, ``this``, ``../x``, ``@index``, ``@root.a``.

    ``scoped`` marks ``this.x``/``./x``: such a path never names a block param.
    """

    parts: tuple[str, ...]
    depth: int = 0
    data: bool = False
    scoped: bool = False


@dataclass(frozen=True, slots=True)
class Literal:
    """A string, number, boolean or null written in a tag."""

    value: str | int | float | bool | None


Expr = Path | Literal


@dataclass(frozen=True, slots=True)
class Text:
    """Output as written."""

    value: str


@dataclass(frozen=True, slots=True)
class Mustache:
    """``{{expr}}`` (escaped) or ``{{{expr}}}``; ``helper`` is set for ``{{lookup a b}}``."""

    value: Expr
    escape: bool
    helper: str | None = None
    params: tuple[Expr, ...] = ()


@dataclass(frozen=True, slots=True)
class Block:
    """A block helper (if, unless, each, with) or a ``section`` (``{{#name}}``)."""

    helper: str
    param: Expr
    program: tuple[Node, ...]
    inverse: tuple[Node, ...]
    block_params: tuple[str, ...] = ()


Node = Text | Mustache | Block
