"""Rendering policy on top of the engine: header-safe subjects, CSS inlining, text parts."""

from __future__ import annotations

import pytest

from postroom.domain.emailtemplates import (
    RenderOptions,
    compile_email_template,
    header_line,
    mail_body,
)
from postroom.domain.handlebars import RenderError, RenderLimits, TemplateSyntaxError
from postroom.domain.htmltext import html_to_text


def _template(subject: str = "Hi {{name}}", html: str | None = None, text: str | None = None):  # type: ignore[no-untyped-def]
    return compile_email_template(
        id=7,
        uuid="u-1",
        version=3,
        category="welcome",
        subject=subject,
        body_html=html,
        body_text=text,
    )


def test_renders_subject_bodies_and_category() -> None:
    template = _template(html="<p>Hello {{name}}</p>", text="Hello {{name}}")
    rendered = template.render({"name": "Ann"}, RenderOptions())
    assert rendered.subject == "Hi Ann"
    assert rendered.html == "<p>Hello Ann</p>"
    assert rendered.text == "Hello Ann"
    assert rendered.category == "welcome"
    assert (template.id, template.version) == (7, 3)


def test_subject_cannot_inject_headers() -> None:
    template = _template(subject="{{{name}}} here", text="x")
    rendered = template.render({"name": "a\r\nBcc: victim@example.com\u2028b"}, RenderOptions())
    assert rendered.subject == "a Bcc: victim@example.com b here"
    assert "\n" not in rendered.subject and "\r" not in rendered.subject


def test_header_line_and_mail_body() -> None:
    assert header_line("  a\n\n\tb\x00c  ") == "a \tb c"
    assert mail_body("a\x00b\ud800c") == "ab\ufffdc"


def test_text_part_is_generated_from_html_only_templates() -> None:
    template = _template(html='<h1>Hi {{name}}</h1><p>See <a href="{{url}}">your order</a>.</p>')
    rendered = template.render({"name": "Ann", "url": "https://shop.test/o/1"}, RenderOptions())
    assert rendered.text == "Hi Ann\n\nSee your order (https://shop.test/o/1).\n"
    off = template.render({"name": "Ann", "url": "u"}, RenderOptions(text_from_html=False))
    assert off.text is None


def test_css_is_inlined_and_media_queries_kept() -> None:
    html = (
        "<html><head><style>p { color: red } "
        "@media (max-width: 600px) { p { color: blue } }</style></head>"
        "<body><p>{{name}}</p></body></html>"
    )
    rendered = _template(html=html).render({"name": "Ann"}, RenderOptions())
    assert rendered.html is not None
    assert '<p style="color: red;">Ann</p>' in rendered.html
    assert "@media (max-width: 600px)" in rendered.html
    untouched = _template(html=html).render({"name": "Ann"}, RenderOptions(inline_css=False))
    assert untouched.html is not None and "<p>Ann</p>" in untouched.html


def test_remote_stylesheets_are_never_fetched() -> None:
    html = '<html><head><link rel="stylesheet" href="http://127.0.0.1:9/x.css"><style>p{}</style></head><body><p>x</p></body></html>'  # noqa: E501
    rendered = _template(html=html).render({}, RenderOptions())
    assert rendered.html is not None and "<p>x</p>" in rendered.html.replace(' style=""', "")


def test_html_without_style_is_left_byte_for_byte() -> None:
    rendered = _template(html="<p>{{name}}</p>").render({"name": "A"}, RenderOptions())
    assert rendered.html == "<p>A</p>"


def test_missing_variables_render_empty() -> None:
    rendered = _template(subject="Hi {{user.name}}!", text="{{a}}{{b.c}}").render(
        None, RenderOptions()
    )
    assert rendered.subject == "Hi !"
    assert rendered.text is None  # an empty body is no body


def test_limits_apply_to_every_field() -> None:
    template = _template(text="{{#each xs}}{{{../big}}}{{/each}}")
    options = RenderOptions(limits=RenderLimits(max_output_chars=1000))
    with pytest.raises(RenderError):
        template.render({"xs": list(range(20)), "big": "x" * 100}, options)


def test_compiling_reports_broken_sources() -> None:
    with pytest.raises(TemplateSyntaxError):
        _template(subject="{{#if a}}")


def test_html_to_text_structure() -> None:
    html = (
        "<html><head><title>T</title><style>p{}</style><script>x()</script></head><body>"
        "<h1>Title</h1><p>One &amp; two<br>three</p>"
        "<ul><li>a</li><li>b <a href='https://x.test/b'>link</a></li></ul>"
        "<ol><li>first</li><li>second</li></ol>"
        "<table><tr><td>A</td><td>B</td></tr><tr><td>C</td><td>D</td></tr></table>"
        "<p><a href='mailto:hi@x.test'>hi@x.test</a> <a href='#top'>top</a> "
        "<img src='l.png' alt='Logo'></p><pre>  keep\n    this</pre></body></html>"
    )
    assert html_to_text(html) == (
        "Title\n\nOne & two\nthree\n\n- a\n- b link (https://x.test/b)\n\n"
        "1. first\n2. second\n\nA B\nC D\n\nhi@x.test top Logo\n\n  keep\n    this\n"
    )


def test_html_to_text_survives_broken_markup() -> None:
    assert html_to_text("<p>unclosed <b>bold <li>item</ul></div>") == "unclosed bold\n- item\n"
    assert html_to_text("") == html_to_text("<style>p{}</style>") == ""


def test_light_templates_are_small_and_need_no_derived_text() -> None:
    assert _template(html="<p>x</p>", text="x").light
    assert _template(text="x" * 1000).light
    assert not _template(html="<p>x</p>").light, "the text part is derived from HTML"
    assert not _template(html="<p>" + "x" * 20_000 + "</p>", text="x").light
