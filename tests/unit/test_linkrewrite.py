"""Finding links in HTML with the parser, and replacing only their values."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.domain.linkrewrite import (
    UNSUBSCRIBE_PLACEHOLDER,
    LinkTable,
    analyse_html,
    analyse_placeholders,
    analyse_text,
    render,
    trackable,
)


def rewrite(html: str, insert: str = "") -> tuple[str, list[str]]:
    table = LinkTable(100)
    part = analyse_html(html, table)
    return render(part, lambda i: f"T{i}", "UNSUB", insert), table.urls


def test_only_the_href_values_change() -> None:
    html = (
        '<P>Hi &amp; bye<A class="x" HREF="https://a.example/p?q=1&amp;r=2" title=\'t\'>a</A>'
        "<a href=http://b.example/>b</a><area shape=rect href='https://a.example/p?q=1&amp;r=2'>"
    )
    out, urls = rewrite(html)
    assert urls == ["https://a.example/p?q=1&r=2", "http://b.example/"]
    assert out == (
        '<P>Hi &amp; bye<A class="x" HREF="T0" title=\'t\'>a</A>'
        "<a href=T1>b</a><area shape=rect href='T0'>"
    )


def test_links_that_are_never_rewritten() -> None:
    html = (
        '<a href="mailto:a@b.example">m</a><a href="tel:+1">t</a><a href="#x">f</a>'
        '<a href="/relative">r</a><a href="javascript:alert(1)">j</a><a href="ftp://h/">f</a>'
        '<a data-pr-notrack href="https://kept.example/">k</a><a href="">e</a><a>n</a>'
        '<a href="https://bad example/">s</a><link href="https://css.example/s.css">'
        '<!-- <a href="https://c.example/"> --><script>var a = "<a href=\'https://s.example/\'>";</script>'
        '<style>a[href="https://y.example/"]{}</style>'
    )
    out, urls = rewrite(html)
    assert urls == [] and out == html


def test_the_unsubscribe_placeholder_is_replaced_not_tracked() -> None:
    out, urls = rewrite(f'<a href="{UNSUBSCRIBE_PLACEHOLDER}">u</a> {UNSUBSCRIBE_PLACEHOLDER}')
    assert urls == [] and out == '<a href="UNSUB">u</a> UNSUB'


def test_the_insert_goes_before_the_closing_body_tag() -> None:
    out, _ = rewrite("<html><body><p>x</p></body></html>", insert="<img>")
    assert out == "<html><body><p>x</p><img></body></html>"
    out, _ = rewrite("<p>x</p>", insert="<img>")
    assert out == "<p>x</p><img>"


def test_links_over_many_lines_and_with_crlf() -> None:
    html = '<p>\r\nline\r\n</p>\r\n<a\r\n  href="https://a.example/x"\r\n>a</a>\r\n'
    out, urls = rewrite(html)
    assert urls == ["https://a.example/x"] and out == html.replace("https://a.example/x", "T0")


def test_text_parts_keep_links_unless_asked() -> None:
    text = f"See https://a.example/x, and {UNSUBSCRIBE_PLACEHOLDER}."
    kept = analyse_text(text, None)
    assert render(kept, lambda i: f"T{i}", "UNSUB") == "See https://a.example/x, and UNSUB."
    table = LinkTable(10)
    tracked = analyse_text(text, table)
    assert render(tracked, lambda i: f"T{i}", "UNSUB") == "See T0, and UNSUB."


def test_the_link_table_is_bounded() -> None:
    table = LinkTable(1)
    out = render(
        analyse_html('<a href="https://a.example/">a</a><a href="https://b.example/">b</a>', table),
        lambda i: f"T{i}",
        "U",
    )
    assert out == '<a href="T0">a</a><a href="https://b.example/">b</a>'


def test_trackable_urls() -> None:
    assert trackable("https://a.example/x?y=1#z") and trackable("HTTP://A.EXAMPLE")
    for bad in (
        "javascript:x",
        "https:///x",
        "https://a b/",
        "https://a.example/\n",
        "//a.example",
    ):
        assert not trackable(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>a=\"' /hrefbody!-&;:x\r\n")), max_size=200))
def test_without_links_to_track_any_markup_is_left_byte_identical(html: str) -> None:
    part = analyse_html(html, LinkTable(100))
    assert render(part, None, UNSUBSCRIBE_PLACEHOLDER) == html


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>a=\"' /hrefbody!-&;:x\r\n")), max_size=120))
def test_rewriting_changes_only_tracked_values(noise: str) -> None:
    html = f'{noise}<a href="https://a.example/">a</a>'
    table = LinkTable(100)
    part = analyse_html(html, table)
    out = render(part, lambda i: "https://t.example/c/X", UNSUBSCRIBE_PLACEHOLDER)
    assert out.replace("https://t.example/c/X", "https://a.example/") == html


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["<a href=\"", UNSUBSCRIBE_PLACEHOLDER, "\">", "</a>", "<body>", "</body>", "x",
             "<!--", "-->", "'", "<a href='https://a.example/'>", "\r\n", "&amp;"]
        ),
        max_size=30,
    )
)  # fmt: skip
def test_placeholders_alone_match_the_html_parse_without_a_link_table(pieces: list[str]) -> None:
    """personalize.py skips the HTML parse when nothing is tracked or inserted: the spans,
    and so every rendered copy, must be those of analyse_html with no link table."""
    html = "".join(pieces)
    parsed, found = analyse_html(html, None), analyse_placeholders(html)
    assert found.spans == parsed.spans
    assert render(found, None, "https://u.example/u/T") == render(
        parsed, None, "https://u.example/u/T"
    )
