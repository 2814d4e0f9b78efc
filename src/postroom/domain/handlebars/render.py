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
    """The output of one render and what it has used of its limits so far."""

    __slots__ = ("max_chars", "max_steps", "out", "size", "steps")

    def __init__(self, limits: RenderLimits) -> None:
        self.out: list[str] = []
        self.size = 0
        self.steps = 0
        self.max_chars, self.max_steps = limits.max_output_chars, limits.max_steps

    def charge(self, cost: _Cost) -> None:
        """Count one pass over a program: its nodes and its literal text."""
        self.steps += cost[0]
        self.size += cost[1]
        if self.steps > self.max_steps:
            raise RenderError(f"rendering takes more than {self.max_steps} steps")
        if self.size > self.max_chars:
            self.too_long()

    def too_long(self) -> None:
        raise RenderError(f"rendered output exceeds {self.max_chars} characters")


Getter = Callable[[_Frame], Any]
Run = Callable[[_Frame, _State], None]
# Steps and literal characters of one pass over a program; loops inside charge their own.
_Cost = tuple[int, int]


class Template:
    """A compiled template: render it as often as needed, from any thread."""

    __slots__ = ("_cost", "_run", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        nodes = parse(source)
        self._run, self._cost = _program(nodes, frozenset()), _pass_cost(nodes)

    def render(self, variables: Any, limits: RenderLimits = RenderLimits()) -> str:
        """The output for ``variables`` (a JSON value); raises RenderError over a limit."""
        state = _State(limits)
        state.charge(self._cost)
        self._run(_Frame(variables, None, {"root": variables}, None), state)
        return "".join(state.out)


def compile_template(source: str) -> Template:
    """Parse and compile ``source``; raises TemplateSyntaxError."""
    return Template(source)


# --- programs and weights ---------------------------------------------------------------


def _pass_cost(nodes: Sequence[Node]) -> _Cost:
    """Cost of one pass over ``nodes``, counting every branch (an upper bound). Loop
    bodies are charged per iteration by the loop itself, so only the loop node counts."""
    steps, chars = len(nodes), 0
    for node in nodes:
        if isinstance(node, Text):
            chars += len(node.value)
        elif isinstance(node, Block):
            inverse = _pass_cost(node.inverse)
            program = (0, 0) if node.helper in _LOOPS else _pass_cost(node.program)
            steps, chars = steps + program[0] + inverse[0], chars + program[1] + inverse[1]
    return steps, chars


_LOOPS = frozenset({"each", "section"})


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
        value = node.value  # its length is charged with the pass (see _pass_cost)
        return lambda frame, state: state.out.append(value)
    if isinstance(node, Mustache):
        return _mustache(node, names)
    return _block(node, names)


def _mustache(node: Mustache, names: frozenset[str]) -> Run:
    get = _lookup(node, names) if node.helper == "lookup" else _getter(node.value, names)
    escaping = node.escape

    def run(frame: _Frame, state: _State) -> None:
        value = get(frame)
        text = value if type(value) is str else to_text(value)
        if escaping:
            text = escape(text)
        state.size += len(text)
        if state.size > state.max_chars:
            state.too_long()
        state.out.append(text)

    return run


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
        return _each(get, program, inverse, node.block_params, _pass_cost(node.program))
    if node.helper == "with":
        return _with(get, program, inverse, node.block_params)
    return _section(get, program, inverse, _pass_cost(node.program))


def _with(get: Getter, program: Run, inverse: Run, params: tuple[str, ...]) -> Run:
    def run(frame: _Frame, state: _State) -> None:
        value = get(frame)
        if not truthy(value):
            inverse(frame, state)
            return
        bound = {params[0]: value} if params else None
        program(_Frame(value, frame, frame.data, bound), state)

    return run


def _each(get: Getter, program: Run, inverse: Run, params: tuple[str, ...], cost: _Cost) -> Run:
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
            state.charge(cost)
            data = {**frame.data, "index": index, "first": index == 0, "last": index == last}
            if keyed:
                data["key"] = key
            bound = dict(zip(params, (item, key), strict=False)) if params else None
            program(_Frame(item, frame, data, bound), state)

    return run


def _section(get: Getter, program: Run, inverse: Run, cost: _Cost) -> Run:
    """``{{#name}}``: a list iterates, true keeps the context, another truthy value is
    the new context, a falsy one renders the inverse (Handlebars' blockHelperMissing)."""
    each = _each(get, program, inverse, (), cost)

    def run(frame: _Frame, state: _State) -> None:
        value = get(frame)
        if not truthy(value):
            inverse(frame, state)
        elif isinstance(value, list):
            each(frame, state)
        elif value is True:
            state.charge(cost)
            program(frame, state)
        else:
            state.charge(cost)
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
        return _from_context(parts)
    return _walk(lambda frame: _ancestor(frame, depth), parts)


def _from_context(parts: tuple[str, ...]) -> Getter:
    """The common case, specialised: a path from the current context (dict fast path)."""
    if not parts:
        return _context
    head, rest = parts[0], parts[1:]

    def get(frame: _Frame) -> Any:
        ctx = frame.ctx
        value = ctx.get(head) if type(ctx) is dict else child(ctx, head)
        for key in rest:
            if value is None:
                return None
            value = value.get(key) if type(value) is dict else child(value, key)
        return value

    return get


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
