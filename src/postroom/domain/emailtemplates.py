"""Email templates: compiled once, rendered per message into subject, bodies and category.

A :class:`CompiledEmailTemplate` is one *version* of a stored template with its three
Handlebars sources compiled (:mod:`postroom.domain.handlebars`). Rendering applies
Postroom's mail policy on top of the engine:

- the subject becomes one header-safe line (line breaks and control characters from
  variables turn into spaces: no header injection through ``{{{name}}}``);
- NUL characters, which Internet mail cannot carry, are removed from the bodies;
- CSS from ``<style>`` blocks is inlined into ``style`` attributes (css-inline, remote
  stylesheets never fetched) because many email clients ignore style blocks;
- a text part is generated from the HTML when the template has HTML only;
- ``{{unsubscribe_url}}`` is the recipient's unsubscribe link (a placeholder here, the
  real URL in each recipient's copy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import css_inline

from postroom.domain.handlebars import RenderLimits, Template, compile_template
from postroom.domain.htmltext import html_to_text
from postroom.domain.linkrewrite import UNSUBSCRIBE_PLACEHOLDER

# Same set as the header validator's: C0 controls but TAB, DEL, C1, Unicode line breaks.
_HEADER_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")
_SURROGATES = re.compile("[\ud800-\udfff]")
# Only HTML that carries style sheets needs the inliner (which re-serialises the document).
_HAS_STYLE = re.compile(r"<style[\s>]", re.IGNORECASE)
# @media and friends cannot be inlined: keep them in a <style> block for the clients
# that honour it. Remote stylesheets are never loaded (no request from a template).
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)

FIELDS = ("subject", "body_html", "body_text")
# Sources up to this size render in well under a millisecond (see docs/benchmarks.md).
_LIGHT_SOURCE_CHARS = 16 * 1024


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a template produced for one message."""

    subject: str
    html: str | None
    text: str | None
    category: str | None


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """Mail policy switches and the engine's limits."""

    limits: RenderLimits = RenderLimits()
    inline_css: bool = True
    text_from_html: bool = True


@dataclass(frozen=True, slots=True)
class CompiledEmailTemplate:
    """One version of a template, ready to render any number of times."""

    id: int
    uuid: str
    version: int
    category: str | None
    subject: Template
    html: Template | None
    text: Template | None

    @property
    def light(self) -> bool:
        """Cheap to render (small sources, no text part to derive from HTML): callers may
        render it on an event loop instead of in a worker thread."""
        parts = (self.subject, self.html, self.text)
        size = sum(len(part.source) for part in parts if part is not None)
        return size <= _LIGHT_SOURCE_CHARS and not (self.html is not None and self.text is None)

    def render(self, variables: dict[str, Any] | None, options: RenderOptions) -> Rendered:
        """Render for one message; raises TemplateError (RenderError over a limit)."""
        # {{unsubscribe_url}} is each recipient's own: the placeholder is replaced in
        # every recipient's copy at send time (postroom.mta.personalize). A variable
        # of that name given with the send wins.
        context = {"unsubscribe_url": UNSUBSCRIBE_PLACEHOLDER, **(variables or {})}
        subject = header_line(self.subject.render(context, options.limits))
        html = self._body(self.html, context, options)
        text = self._body(self.text, context, options)
        if html and options.inline_css and _HAS_STYLE.search(html):
            html = _INLINER.inline(html)
        if html and not text and options.text_from_html:
            text = html_to_text(html)
        return Rendered(subject, html or None, text or None, self.category)

    @staticmethod
    def _body(template: Template | None, context: Any, options: RenderOptions) -> str | None:
        if template is None:
            return None
        return mail_body(template.render(context, options.limits))


def compile_email_template(
    *,
    id: int,
    uuid: str,
    version: int,
    category: str | None,
    subject: str,
    body_html: str | None,
    body_text: str | None,
) -> CompiledEmailTemplate:
    """Compile a stored template's sources; raises TemplateSyntaxError."""
    return CompiledEmailTemplate(
        id=id,
        uuid=uuid,
        version=version,
        category=category or None,
        subject=compile_template(subject),
        html=compile_template(body_html) if body_html else None,
        text=compile_template(body_text) if body_text else None,
    )


def header_line(text: str) -> str:
    """``text`` as a single header-safe line: breaks and controls become one space."""
    return _HEADER_UNSAFE.sub(" ", text).strip()


def mail_body(text: str) -> str:
    """A rendered body without what mail cannot carry (NUL, lone surrogates)."""
    text = text.replace("\x00", "")
    if not text.isascii():
        text = _SURROGATES.sub("\ufffd", text)
    return text
