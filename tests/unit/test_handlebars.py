"""The Handlebars engine: output cases, syntax errors, limits and hostile input.

Expected outputs follow Handlebars.js (escaping, standalone lines, blockHelperMissing)
except where the contract says otherwise (spec §6: empty objects are falsy).
"""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.domain.handlebars import (
    MAX_NESTING,
    RenderError,
    RenderLimits,
    TemplateError,
    TemplateSyntaxError,
    compile_template,
)
from postroom.domain.handlebars.lexer import MAX_TAGS

USER = {"name": "Jörg", "company": {"name": "ACME & Co", "address": {"city": "Berlin"}}}

# (template, variables, expected output)
CASES: list[tuple[str, Any, str]] = [
    # variables and paths
    ("Hello {{name}}!", USER, "Hello Jörg!"),
    ("{{company.name}}", USER, "ACME &amp; Co"),
    ("{{company.address.city}}", USER, "Berlin"),
    ("{{company/address/city}}", USER, "Berlin"),
    ("{{this.name}}", USER, "Jörg"),
    ("{{./name}}", USER, "Jörg"),
    ("{{missing}}|{{company.missing}}|{{name.deeper}}", USER, "||"),
    ("{{[first name]}}", {"first name": "Ann"}, "Ann"),
    ("{{items.[1]}} {{items.0}}", {"items": ["a", "b"]}, "b a"),
    ("{{items.length}} {{word.length}}", {"items": [1, 2, 3], "word": "abcd"}, "3 4"),
    ("{{items.5}}", {"items": [1]}, ""),
    ("{{this}}", "top", "top"),
    ("{{user-name}} {{a_b}} {{$x}}", {"user-name": "u", "a_b": "v", "$x": "w"}, "u v w"),
    # value printing (JavaScript's String())
    (
        "{{n}} {{f}} {{g}} {{t}} {{z}}",
        {"n": 3, "f": 1.5, "g": 2.0, "t": True, "z": False},
        "3 1.5 2 true false",
    ),  # noqa: E501
    ("{{nothing}}", {"nothing": None}, ""),
    ("{{list}}", {"list": [1, "a", None, [2, 3]]}, "1,a,,2,3"),
    ("{{obj}}", {"obj": {"a": 1}}, "[object Object]"),
    ("{{zero}}", {"zero": 0}, "0"),
    # escaping
    (
        "{{v}}",
        {"v": "<script>alert('x')</script>"},
        "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;",
    ),  # noqa: E501
    ("{{v}}", {"v": 'a & b " ` ='}, "a &amp; b &quot; &#x60; &#x3D;"),
    ("{{{v}}}", {"v": "<b>bold</b> & co"}, "<b>bold</b> & co"),
    ("{{& v}}", {"v": "<i>x</i>"}, "<i>x</i>"),
    ("{{{company.name}}}", USER, "ACME & Co"),
    ("{{v}}", {"v": "&amp;"}, "&amp;amp;"),
    ('<a href="{{url}}">', {"url": '" onclick="x'}, '<a href="&quot; onclick&#x3D;&quot;x">'),
    ("\\{{name}} {{name}}", USER, "{{name}} Jörg"),
    ("\\\\{{name}}", USER, "\\Jörg"),
    # if / else / unless
    ("{{#if ok}}yes{{/if}}", {"ok": True}, "yes"),
    ("{{#if ok}}yes{{else}}no{{/if}}", {"ok": False}, "no"),
    ("{{#if ok}}yes{{^}}no{{/if}}", {}, "no"),
    ("{{#if a}}A{{else if b}}B{{else}}C{{/if}}", {"b": 1}, "B"),
    ("{{#if a}}A{{else if b}}B{{else}}C{{/if}}", {}, "C"),
    ("{{#if a}}A{{else unless b}}not b{{/if}}", {"b": 0}, "not b"),
    ("{{#unless ok}}off{{else}}on{{/unless}}", {"ok": 1}, "on"),
    ("{{#unless ok}}off{{/unless}}", {"ok": ""}, "off"),
    ("{{#if true}}lit{{/if}}{{#if false}}no{{/if}}{{#if null}}no{{/if}}", {}, "lit"),
    ("{{#if 'x'}}str{{/if}}{{#if 0}}zero{{/if}}{{#if 1}}one{{/if}}", {}, "strone"),
    # the contract's falsy values
    *[
        ("{{#if v}}T{{else}}F{{/if}}", {"v": value}, "F")
        for value in ("", 0, 0.0, None, False, [], {})
    ],
    *[
        ("{{#if v}}T{{else}}F{{/if}}", {"v": value}, "T")
        for value in ("0", " ", 1, -1, 0.5, True, [0], {"a": None}, "false")
    ],
    # each
    ("{{#each items}}{{this}},{{/each}}", {"items": ["a", "b"]}, "a,b,"),
    ("{{#each items}}{{@index}}{{/each}}", {"items": ["a", "b", "c"]}, "012"),
    (
        "{{#each items}}{{#if @first}}[{{/if}}{{.}}{{#if @last}}]{{else}},{{/if}}{{/each}}",
        {"items": [1, 2, 3]},
        "[1,2,3]",
    ),
    ("{{#each items}}{{name}};{{/each}}", {"items": [{"name": "x"}, {"name": "y"}]}, "x;y;"),
    ("{{#each items}}x{{else}}empty{{/each}}", {"items": []}, "empty"),
    ("{{#each items}}x{{else}}empty{{/each}}", {}, "empty"),
    ("{{#each items}}x{{else}}empty{{/each}}", {"items": "text"}, "empty"),
    ("{{#each map}}{{@key}}={{this}}&{{/each}}", {"map": {"a": 1, "b": 2}}, "a=1&b=2&"),
    ("{{#each map}}{{@key}}{{#if @last}}.{{/if}}{{/each}}", {"map": {"a": 1, "b": 2}}, "ab."),
    ("{{#each items}}{{../title}}:{{this}} {{/each}}", {"title": "T", "items": [1, 2]}, "T:1 T:2 "),
    (
        "{{#each items as |item i|}}{{i}}={{item.n}} {{/each}}",
        {"items": [{"n": 5}, {"n": 6}]},
        "0=5 1=6 ",
    ),  # noqa: E501
    ("{{#each map as |v k|}}{{k}}:{{v}} {{/each}}", {"map": {"x": 1}}, "x:1 "),
    (
        "{{#each rows}}{{#each this}}{{@../index}}{{/each}}{{/each}}".replace(
            "{{@../index}}", "{{../0}}"
        ),  # noqa: E501
        {"rows": [["a", "b"]]},
        "aa",
    ),
    (
        "{{#each groups}}{{name}}:{{#each members}}{{this}}{{#unless @last}},{{/unless}}{{/each}};{{/each}}",  # noqa: E501
        {"groups": [{"name": "g1", "members": ["a", "b"]}, {"name": "g2", "members": []}]},
        "g1:a,b;g2:;",
    ),
    ("{{#each items}}{{@root.prefix}}{{this}}{{/each}}", {"prefix": "#", "items": [1, 2]}, "#1#2"),
    (
        "{{#each items}}{{#with this}}{{@index}}{{/with}}{{/each}}",
        {"items": [{"a": 1}, {"a": 2}]},
        "01",
    ),  # noqa: E501
    # with
    ("{{#with company}}{{name}} in {{address.city}}{{/with}}", USER, "ACME &amp; Co in Berlin"),
    ("{{#with company}}{{../name}}{{/with}}", USER, "Jörg"),
    ("{{#with missing}}yes{{else}}none{{/with}}", USER, "none"),
    ("{{#with company as |c|}}{{c.name}}/{{name}}{{/with}}", USER, "ACME &amp; Co/ACME &amp; Co"),
    ("{{#with company}}{{#with address}}{{../../name}}{{/with}}{{/with}}", USER, "Jörg"),
    ("{{#if name}}{{../name}}{{/if}}", USER, ""),
    # mustache sections
    ("{{#user}}{{name}}{{/user}}", {"user": {"name": "N"}}, "N"),
    ("{{#items}}<{{this}}>{{/items}}", {"items": ["a", "b"]}, "<a><b>"),
    ("{{#flag}}on {{name}}{{/flag}}", {"flag": True, "name": "n"}, "on n"),
    ("{{^items}}none{{/items}}", {"items": []}, "none"),
    ("{{^items}}none{{else}}some{{/items}}", {"items": [1]}, "some"),
    # lookup
    ("{{lookup map key}}", {"map": {"k": "v"}, "key": "k"}, "v"),
    ("{{lookup items 1}}", {"items": ["a", "b"]}, "b"),
    (
        "{{#each keys}}{{lookup ../map this}}{{/each}}",
        {"keys": ["a", "b"], "map": {"a": 1, "b": 2}},
        "12",
    ),  # noqa: E501
    # comments and whitespace control
    ("a{{! a comment }}b{{!-- with }} inside --}}c", {}, "abc"),
    ("a  {{~name~}}  b", USER, "aJörgb"),
    ("<p>\n  {{~#if ok~}}\n  yes\n  {{~/if~}}\n</p>", {"ok": True}, "<p>yes</p>"),
    # standalone lines
    (
        "<ul>\n{{#each items}}\n  <li>{{this}}</li>\n{{/each}}\n</ul>",
        {"items": [1, 2]},
        "<ul>\n  <li>1</li>\n  <li>2</li>\n</ul>",
    ),  # noqa: E501
    ("Hi\n{{#if a}}\nA\n{{else}}\nB\n{{/if}}\nend", {}, "Hi\nB\nend"),
    ("{{#if a}}\nA\n{{/if}}", {"a": 1}, "A\n"),
    ("x {{#if a}}A{{/if}}\ny", {"a": 1}, "x A\ny"),
    ("  {{! standalone comment }}\nline", {}, "line"),
    ("\r\n{{#if a}}\r\nA\r\n{{/if}}\r\n", {"a": 1}, "\r\nA\r\n"),
    # deep data
    ("{{a.b.c.d.e.f}}", {"a": {"b": {"c": {"d": {"e": {"f": "deep"}}}}}}, "deep"),
    ("{{a.b}}", {"a": "string"}, ""),
    ("{{a.__class__}}{{a.__dict__}}", {"a": {"x": 1}}, ""),
    ("{{0}} {{'s'}} {{-1.5}}", {}, "0 s -1.5"),
    ("", {}, ""),
    ("no tags at all } { }}", {}, "no tags at all } { }}"),
    ("{{name}}", None, ""),
    ("{{#each this}}{{this}}{{/each}}", [1, 2], "12"),
]


@pytest.mark.parametrize(("source", "variables", "expected"), CASES)
def test_renders(source: str, variables: Any, expected: str) -> None:
    assert compile_template(source).render(variables) == expected


def test_there_are_at_least_sixty_cases() -> None:
    assert len(CASES) + len(SYNTAX_ERRORS) >= 60


def test_a_template_renders_again_with_other_variables() -> None:
    template = compile_template("{{#each xs}}{{this}}{{/each}}|{{name}}")
    assert template.render({"xs": [1], "name": "a"}) == "1|a"
    assert template.render({"xs": [], "name": "b"}) == "|b"


# (template, part of the error message)
SYNTAX_ERRORS: list[tuple[str, str]] = [
    ("{{name", "unclosed '{{' at line 1, column 1"),
    ("ok\n  {{{raw}}", "unclosed '{{' at line 2, column 3"),
    ("{{#if a}}x", "'{{#if}}' is not closed"),
    ("{{#if a}}x{{/each}}", "'{{/each}}' does not match '{{#if}}'"),
    ("x{{/if}}", "without an opening block"),
    ("{{else}}", "{{else}} without an opening block"),
    ("{{#if a}}1{{else}}2{{else}}3{{/if}}", "more than one {{else}}"),
    ("{{#if}}x{{/if}}", "'#if' takes exactly one argument"),
    ("{{#if a b}}x{{/if}}", "'#if' takes exactly one argument"),
    ("{{> header}}", "partials are not supported"),
    ("{{#> layout}}x{{/layout}}", "partial blocks"),
    ("{{{{raw}}}} {{{{/raw}}}}", "raw blocks"),
    ("{{helper arg}}", "unknown helper 'helper'"),
    ("{{#custom arg}}x{{/custom}}", "unknown helper 'custom'"),
    ("{{name key=value}}", "hash arguments are not supported"),
    ("{{lookup (x) y}}", "subexpressions are not supported"),
    ("{{}}", "empty tag"),
    ("{{a..b}}", "invalid path"),
    ("{{a.}}", "invalid path"),
    ("{{@secret}}", "unsupported data variable"),
    ("{{@../index}}", "unsupported data variable"),
    ("{{!-- never closed", "unclosed"),
    ("{{#if a as |x|}}{{/if}}", "at most 0 block params"),
    ("{{#each a as |x y z|}}{{/each}}", "at most 2 block params"),
    ("{{x as |y|}}", "block params are only allowed on blocks"),
    ("{{{a}}", "unclosed"),
    ("{{#if a}}{{/if}}{{/if}}", "'{{/if}}' without an opening block"),
    ("{{ }}", "empty tag"),
]


@pytest.mark.parametrize(("source", "message"), SYNTAX_ERRORS)
def test_syntax_errors_are_explained(source: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template(source)
    assert message in str(caught.value)


def test_syntax_error_positions() -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template("line one\nline {{two}}\n  {{#if x}}")
    assert (caught.value.line, caught.value.column) == (3, 3)


# --- hostile input ------------------------------------------------------------------------


def test_nesting_is_bounded() -> None:
    ok = "{{#if a}}" * MAX_NESTING + "x" + "{{/if}}" * MAX_NESTING
    assert compile_template(ok).render({"a": 1}) == "x"
    deep = "{{#if a}}" * (MAX_NESTING + 1) + "{{/if}}" * (MAX_NESTING + 1)
    with pytest.raises(TemplateSyntaxError, match="nested more than"):
        compile_template(deep)
    with pytest.raises(TemplateSyntaxError):
        compile_template("{{#if a}}" * 100_000)


def test_template_size_is_bounded_in_tags_and_tag_length() -> None:
    """Compiling stays fast whatever is saved: a cap on tags and on one tag's length."""
    assert len(compile_template("{{a}}" * MAX_TAGS).render({"a": 1})) == MAX_TAGS
    for hostile in ("{{a}}" * (MAX_TAGS + 1), "\\{{" * (MAX_TAGS + 1), "{{!x}}" * 10**6):
        with pytest.raises(TemplateSyntaxError, match=f"more than {MAX_TAGS} tags"):
            compile_template(hostile)
    for hostile in ("{{" + "a" * 5000 + "}}", "{{{" + "a" * 5000 + "}}}"):
        with pytest.raises(TemplateSyntaxError, match="tag longer than"):
            compile_template(hostile)
    assert compile_template("x" * 1_000_000).render({}) == "x" * 1_000_000


def test_output_size_is_bounded() -> None:
    template = compile_template("{{#each rows}}{{{../big}}}{{/each}}")
    variables = {"rows": list(range(100)), "big": "x" * 1000}
    limits = RenderLimits(max_output_chars=50_000)
    with pytest.raises(RenderError, match="exceeds 50000 characters"):
        template.render({**variables, "rows": list(range(100))}, limits)
    assert len(template.render({**variables, "rows": list(range(10))}, limits)) == 10_000


def test_work_is_bounded_even_without_output() -> None:
    """Nested loops that print nothing still stop: 10^12 iterations would never end."""
    template = compile_template(
        "{{#each a}}{{#each ../a}}{{#each ../../a}}{{#each ../../../a}}"
        "{{missing}}{{/each}}{{/each}}{{/each}}{{/each}}"
    )
    with pytest.raises(RenderError, match="steps"):
        template.render({"a": list(range(1000))}, RenderLimits(max_steps=100_000))


def test_repeated_big_values_hit_the_output_limit() -> None:
    template = compile_template("{{{v}}}" * 1000)
    with pytest.raises(RenderError):
        template.render({"v": "y" * 100_000}, RenderLimits(max_output_chars=1_000_000))


def test_deeply_nested_values_print_without_recursion_errors() -> None:
    nested: Any = "leaf"
    for _ in range(5000):
        nested = [nested]
    assert compile_template("{{v}}").render({"v": nested}) == ""
    assert compile_template("{{#if v}}yes{{/if}}").render({"v": nested}) == "yes"


def test_huge_numbers_and_indexes() -> None:
    assert compile_template("{{n}}").render({"n": 10**5000}) == "Infinity"
    assert compile_template("{{n}}").render({"n": 1e300}) == "1e+300"
    assert compile_template("{{a.99999999999999999999}}").render({"a": [1]}) == ""


def test_variables_are_never_reached_as_attributes() -> None:
    class Secretive:
        secret = "leaked"

    template = compile_template("{{obj.secret}}{{obj.__class__}}{{#with obj}}{{secret}}{{/with}}")
    assert template.render({"obj": Secretive()}) == ""


ALPHABET = string.ascii_letters[:6] + "{}#/^!~&.@[]|\"' =()>\\\n\t0123456789-*"


@settings(max_examples=400, deadline=None)
@given(source=st.text(alphabet=ALPHABET, max_size=80))
def test_arbitrary_input_never_crashes(source: str) -> None:
    """Any string either compiles and renders to a string, or raises TemplateError."""
    try:
        template = compile_template(source)
    except TemplateError:
        return
    rendered = template.render(
        {"a": [1, {"b": 2}], "b": {"c": "<x>"}, "c": "", "d": True},
        RenderLimits(max_output_chars=100_000, max_steps=10_000),
    )
    assert isinstance(rendered, str)


@settings(max_examples=200, deadline=None)
@given(
    source=st.lists(
        st.sampled_from(
            [
                "{{#if a}}",
                "{{#each a}}",
                "{{#with b}}",
                "{{else}}",
                "{{/if}}",
                "{{/each}}",
                "{{/with}}",
                "{{this}}",
                "{{@index}}",
                "{{../a}}",
                "x",
                "\n",
                "{{~a~}}",
            ]
        ),  # fmt: skip
        max_size=30,
    ).map("".join)
)
def test_arbitrary_block_structures_never_crash(source: str) -> None:
    try:
        template = compile_template(source)
    except TemplateError:
        return
    assert isinstance(template.render({"a": [1, 2], "b": {"a": [3]}}), str)
