"""docs/settings.md, generated from the Settings model: every section and field.

``python -m postroom.cli.settingsdoc`` prints it; ``./scripts/settings-doc`` writes it,
and a test fails while the checked-in file differs from what this renders. For each
field: its type, its default, its environment variable, the command-line flag that sets
it (read from the CLI's own options) and its description. Tables nested inside a
section (IP pools) get a table of their own.
"""

from __future__ import annotations

import json
import types
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from postroom.config import Settings

HEADER = """\
# Settings reference

<!-- Generated from postroom.config.Settings by ./scripts/settings-doc; do not edit. -->

Every setting is read, from the first that gives it: a command-line flag (where the
table names one), an environment variable `POSTROOM_<SECTION>__<KEY>`, or the TOML file
named by `POSTROOM_CONFIG`, in `[section]` tables:

```toml
[server]
port = 9000

[delivery]
mode = "mx"
stream_modes = { bulk = "sandbox" }
```

In environment variables, lists and tables are JSON
(`POSTROOM_DELIVERY__STREAM_MODES='{"bulk": "sandbox"}'`) and booleans `true`/`false`.
"""


def render() -> str:
    """The whole reference, as Markdown."""
    flags = _flags()
    parts = [HEADER]
    for section, info in Settings.model_fields.items():
        model = info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        parts.append(_section(section, model, flags))
    return "\n".join(parts)


def _section(name: str, model: type[BaseModel], flags: dict[str, str]) -> str:
    lines = [f"## `[{name}]`", ""]
    lines += [_docline(model), ""]
    lines += ["| Setting | Type | Default | Environment variable | Flag | Description |"]
    lines += ["|---|---|---|---|---|---|"]
    nested: list[tuple[str, type[BaseModel]]] = []
    for field, finfo in model.model_fields.items():
        env = f"POSTROOM_{name}__{field}".upper()
        flag = f"`{flags[env]}`" if env in flags else ""
        cells = [f"`{name}.{field}`", _type(finfo.annotation), _default(finfo), f"`{env}`"]
        lines.append(_row([*cells, flag, _text(finfo.description)]))
        nested += _models(f"{name}.{field}", finfo.annotation)
    lines.append("")
    while nested:
        path, sub = nested.pop(0)
        lines += [f"### `{path}`", "", _docline(sub), ""]
        lines += ["| Key | Type | Default | Description |", "|---|---|---|---|"]
        for field, finfo in sub.model_fields.items():
            cells = [f"`{field}`", _type(finfo.annotation), _default(finfo)]
            lines.append(_row([*cells, _text(finfo.description)]))
            nested += _models(f"{path}.{field}", finfo.annotation)
        lines.append("")
    return "\n".join(lines)


def _models(path: str, annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """Models nested in ``annotation``, with the path at which they appear."""
    origin, args = get_origin(annotation), get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(path, annotation)]
    if origin is list:
        return _models(f"{path}[]", args[0])
    if origin is dict:
        return _models(f"{path}.<name>", args[1])
    if origin in (Union, types.UnionType):
        return [m for a in args for m in _models(path, a)]
    return []


def _type(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        shown = ", ".join(_type(a) for a in args if a is not type(None))
        return f"{shown}, optional" if type(None) in args else shown
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is dict:
        return f"table of {_type(args[0])} → {_type(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(str(m.value) for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table (below)"
    names = {Path: "path", date: "date (YYYY-MM-DD)", str: "str", int: "int"}
    names.update({float: "float", bool: "bool"})
    if annotation in names:
        return names[annotation]
    return "IP network" if "IPvAnyNetwork" in str(annotation) else str(annotation)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    return f"`{_value(value)}`"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return json.dumps(value.value)
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, separators=(", ", ": "), default=str)


def _docline(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip()
    return _text(" ".join(doc.split()))


def _text(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _flags() -> dict[str, str]:
    """Environment variable -> the CLI flag that sets the same setting."""
    from postroom.cli.main import app

    found: dict[str, str] = {}
    # Typer's command classes are click's in shape (not always by type): read them so.
    pending: list[Any] = [typer.main.get_command(app)]
    while pending:
        command = pending.pop()
        pending += list(getattr(command, "commands", {}).values())
        for param in command.params:
            envvar = param.envvar if isinstance(param.envvar, str) else None
            longs = [o for o in param.opts if o.startswith("--")]
            if envvar and longs:
                found.setdefault(envvar, longs[0])
    return found


if __name__ == "__main__":
    print(render(), end="")
