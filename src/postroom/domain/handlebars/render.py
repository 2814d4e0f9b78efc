"""The interpreter: each AST node becomes a closure, the closures write the output.

Turning the tree into closures once (at compile time) means a render does no dispatch
on node types and no attribute lookups on the AST: it is the cheapest way to interpret
a tree in Python without generating code. Every render carries a :class:`_State` that
counts output characters and work; going over either limit raises :class:`RenderError`.

Contexts: each ``{{#each}}`` iteration and each ``{{#with}}`` push a :class:`_Frame`
(its value, its parent for ``../``, ``@`` data and block params); ``if``/``unless`` do
not, so ``../`` skips them, as in Handlebars.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from postroom.domain.handlebars.errors import RenderError
from postroom.domain.handlebars.nodes import Block, Expr, Literal, Mustache, Node, Path, Text
from postroom.domain.handlebars.parser import parse
from postroom.domain.handlebars.values import child, escape, to_text, truthy


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """Bounds of one render: output characters, and work in weighted loop iterations."""

    max_output_chars: int = 10 * 1024 * 1024
    max_steps: int = 1_000_000


class _Frame:
    __slots__ = ("ctx", "data", "params", "parent")

    def __init__(
        self, ctx: Any, parent: _Frame | None, data: dict[str, Any], params: dict[str, Any] | None
    ) -> None:
        self.ctx, self.parent, self.data, self.params = ctx, parent, data, params


class _State:
    __slots__ = ("limits", "out", "size", "steps")

    def __init__(self, limits: RenderLimits) -> None:
        self.out: list[str] = []
        self.size = 0
        self.steps = 0
        self.limits = limits

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.limits.max_output_chars:
            raise RenderError(f"rendered output exceeds {self.limits.max_output_chars} characters")
        self.out.append(text)

    def charge(self, weight: int) -> None:
        self.steps += weight
        if self.steps > self.limits.max_steps:
            raise RenderError(f"rendering takes more than {self.limits.max_steps} steps")


Getter = Callable[[_Frame], Any]
Run = Callable[[_Frame, _State], None]


class Template:
    """A compiled template: render it as often as needed, from any thread."""

    __slots__ = ("_run", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._run = _program(parse(source), frozenset())

    def render(self, variables: Any, limits: RenderLimits = RenderLimits()) -> str:
        """The output for ``variables`` (a JSON value); raises RenderError over a limit."""
        state = _State(limits)
        self._run(_Frame(variables, None, {"root": variables}, None), state)
        return "".join(state.out)


def compile_template(source: str) -> Template:
    """Parse and compile ``source``; raises TemplateSyntaxError."""
    return Template(source)


# --- programs and weights ---------------------------------------------------------------


def _weight(nodes: Sequence[Node]) -> int:
    """Work of one pass over ``nodes``: loops inside are charged by their own iterations."""
    total = len(nodes)
    for node in nodes:
        if isinstance(node, Block) and node.helper != "each":
            total += _weight(node.program) + _weight(node.inverse)
    return total


def _program(nodes: Sequence[Node], names: frozenset[str]) -> Run:
    runs = [_node(node, names) for node in nodes]
    if len(runs) == 1:
        return runs[0]

    def run(frame: _Frame, state: _State) -> None:
        for step in runs:
            step(frame, state)

    return run


def _node(node: Node, names: frozenset[str]) -> Run:
    if isinstance(node, Text):
        value = node.value
        return lambda frame, state: state.write(value)
    if isinstance(node, Mustache):
        return _mustache(node, names)
    return _block(node, names)


def _mustache(node: Mustache, names: frozenset[str]) -> Run:
    get = _lookup(node, names) if node.helper == "lookup" else _getter(node.value, names)
    if node.escape:
        return lambda frame, state: state.write(escape(to_text(get(frame))))
    return lambda frame, state: state.write(to_text(get(frame)))


def _lookup(node: Mustache, names: frozenset[str]) -> Getter:
    """``{{lookup target key}}``: ``target[key]`` with a key that is itself a value."""
    target, key = (_getter(p, names) for p in node.params)
    return lambda frame: child(target(frame), to_text(key(frame)))


# --- blocks -----------------------------------------------------------------------------


def _block(node: Block, names: frozenset[str]) -> Run:
    get = _getter(node.param, names)
    inner = names | frozenset(node.block_params)
    program, inverse = _program(node.program, inner), _program(node.inverse, names)
    if node.helper in ("if", "unless"):
        wanted = node.helper == "if"

        def conditional(frame: _Frame, state: _State) -> None:
            chosen = program if truthy(get(frame)) is wanted else inverse
            chosen(frame, state)

        return conditional
    if node.helper == "each":
        return _each(get, program, inverse, node.block_params, 1 + _weight(node.program))
    if node.helper == "with":
        return _with(get, program, inverse, node.block_params)
    return _section(get, program, inverse, 1 + _weight(node.program))


def _with(get: Getter, program: Run, inverse: Run, params: tuple[str, ...]) -> Run:
    def run(frame: _Frame, state: _State) -> None:
        value = get(frame)
        if not truthy(value):
            inverse(frame, state)
            return
        bound = {params[0]: value} if params else None
        program(_Frame(value, frame, frame.data, bound), state)

    return run


def _each(get: Getter, program: Run, inverse: Run, params: tuple[str, ...], weight: int) -> Run:
    def run(frame: _Frame, state: _State) -> None:
        value = get(frame)
        if isinstance(value, dict):
            items: Sequence[tuple[Any, Any]] = list(value.items())
        elif isinstance(value, list):
            items = list(enumerate(value))
        else:
            items = []
        if not items:
            inverse(frame, state)
            return
        last, keyed = len(items) - 1, isinstance(value, dict)
        for index, (key, item) in enumerate(items):
            state.charge(weight)
            data = {**frame.data, "index": index, "first": index == 0, "last": index == last}
            if keyed:
                data["key"] = key
            bound = dict(zip(params, (item, key), strict=False)) if params else None
            program(_Frame(item, frame, data, bound), state)

    return run


def _section(get: Getter, program: Run, inverse: Run, weight: int) -> Run:
    """``{{#name}}``: a list iterates, true keeps the context, another truthy value is
    the new context, a falsy one renders the inverse (Handlebars' blockHelperMissing)."""
    each = _each(get, program, inverse, (), weight)

    def run(frame: _Frame, state: _State) -> None:
        value = get(frame)
        if not truthy(value):
            inverse(frame, state)
        elif isinstance(value, list):
            each(frame, state)
        elif value is True:
            program(frame, state)
        else:
            program(_Frame(value, frame, frame.data, None), state)

    return run


# --- paths ------------------------------------------------------------------------------


def _getter(expr: Expr, names: frozenset[str]) -> Getter:
    if isinstance(expr, Literal):
        value = expr.value
        return lambda frame: value
    return _path_getter(expr, names)


def _path_getter(path: Path, names: frozenset[str]) -> Getter:
    parts = path.parts
    if path.data:
        head, rest = parts[0], parts[1:]
        return _walk(lambda frame: frame.data.get(head), rest)
    if not path.scoped and path.depth == 0 and parts and parts[0] in names:
        name, rest = parts[0], parts[1:]
        return _walk(lambda frame: _block_param(frame, name), rest)
    depth = path.depth
    if depth == 0:
        base: Getter = _context
    else:
        base = lambda frame: _ancestor(frame, depth)  # noqa: E731
    return _walk(base, parts)


def _walk(base: Getter, parts: tuple[str, ...]) -> Getter:
    if not parts:
        return base
    if len(parts) == 1:
        key = parts[0]
        return lambda frame: child(base(frame), key)

    def get(frame: _Frame) -> Any:
        value = base(frame)
        for key in parts:
            value = child(value, key)
            if value is None:
                return None
        return value

    return get


def _context(frame: _Frame) -> Any:
    return frame.ctx


def _ancestor(frame: _Frame, depth: int) -> Any:
    current: _Frame | None = frame
    for _ in range(depth):
        current = current.parent if current is not None else None
    return current.ctx if current is not None else None


def _block_param(frame: _Frame, name: str) -> Any:
    current: _Frame | None = frame
    while current is not None:
        if current.params is not None and name in current.params:
            return current.params[name]
        current = current.parent
    return None
