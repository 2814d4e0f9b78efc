"""A small, safe Handlebars engine for email templates (spec §6).

Templates are parsed to an AST (:mod:`.parser`) and the AST is turned into a tree of
plain Python closures (:mod:`.render`); no source code is generated and nothing is
evaluated. Variables are JSON values and are only ever read by key or index, never as
attributes, so a template cannot reach anything but the data it was given.

Supported: ``{{path}}`` (HTML-escaped), ``{{{path}}}`` and ``{{& path}}`` (raw), dotted
and slashed paths, ``this``, ``../``, ``[segment literals]``, ``@index``/``@first``/
``@last``/``@key``/``@root``; the ``if``, ``unless``, ``each`` and ``with`` blocks with
``{{else}}`` (and ``{{else if …}}`` chains), block params (``as |item i|``), mustache
sections (``{{#name}}``/``{{^name}}``), the ``lookup`` helper, comments, ``\\{{``
escapes, ``~`` whitespace control and standalone-line stripping. Partials, custom
helpers, hash arguments and subexpressions are refused with a clear error.

Limits: blocks nest at most :data:`MAX_NESTING` deep; a render stops with
:class:`RenderError` once its output or its work (weighted loop iterations) exceeds the
:class:`RenderLimits`. Every problem is a :class:`TemplateError`, never a crash.
"""

from __future__ import annotations

from postroom.domain.handlebars.errors import RenderError, TemplateError, TemplateSyntaxError
from postroom.domain.handlebars.parser import MAX_NESTING, parse
from postroom.domain.handlebars.render import RenderLimits, Template, compile_template

__all__ = [
    "MAX_NESTING",
    "RenderError",
    "RenderLimits",
    "Template",
    "TemplateError",
    "TemplateSyntaxError",
    "compile_template",
    "parse",
]
