"""The engine's errors: one base class, so callers catch every template problem at once."""

from __future__ import annotations


class TemplateError(ValueError):
    """Any problem with a template or its rendering; the message is shown to the client."""


class TemplateSyntaxError(TemplateError):
    """The template cannot be parsed; the message names the line and column."""

    def __init__(self, message: str, source: str, position: int) -> None:
        line = source.count("\n", 0, position) + 1
        column = position - (source.rfind("\n", 0, position) + 1) + 1
        super().__init__(f"{message} at line {line}, column {column}")
        self.line, self.column = line, column


class RenderError(TemplateError):
    """Rendering went over a limit (output size or work)."""
