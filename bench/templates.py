"""Micro-benchmark: Handlebars template rendering against a bare string-format baseline.

Renders the same receipt (subject, HTML body with a loop and conditionals, text body)
four ways in the same run and prints renders per second for each:

- ``str.format``: the baseline, hand-written Python building the same three strings
  (``html.escape`` for escaping, ``"".join`` for the loop): the floor for any engine;
- the engine alone (``postroom.domain.handlebars``: three ``Template.render`` calls);
- a full template send render (``CompiledEmailTemplate.render``: the engine plus the mail
  policy — header-safe subject, body clean-up) with CSS inlining and text generation off;
- the same with a ``<style>`` block inlined by css-inline and the text part generated
  from the HTML (what an HTML-only template with a style sheet costs).

Usage: ``.venv/bin/python bench/templates.py [seconds per measurement]`` (default 2).
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable
from typing import Any

from postroom.domain.emailtemplates import RenderOptions, compile_email_template
from postroom.domain.handlebars import compile_template

SUBJECT = "Your receipt #{{order.number}}, {{{customer.first_name}}}"
HTML = """<html><body>
<h1>Thanks, {{customer.first_name}}!</h1>
<table>
{{#each order.items}}
  <tr><td>{{name}}</td><td>{{quantity}}</td><td>{{price}}</td></tr>
{{/each}}
</table>
<p>Total: <b>{{order.total}}</b></p>
{{#if order.coupon}}<p>You saved {{order.coupon.amount}} with {{order.coupon.code}}.</p>{{/if}}
<p><a href="{{links.account}}">Your account</a></p>
</body></html>
"""
TEXT = """Thanks, {{customer.first_name}}!
{{#each order.items}}
- {{name}} x{{quantity}}: {{price}}
{{/each}}
Total: {{order.total}}
{{#if order.coupon}}You saved {{order.coupon.amount}} with {{order.coupon.code}}.{{/if}}
Your account: {{links.account}}
"""
STYLE = "<head><style>td { padding: 4px } h1 { color: #333 } .total { font-weight: bold }</style></head>"  # noqa: E501
VARIABLES: dict[str, Any] = {
    "customer": {"first_name": "Ana & Co"},
    "order": {
        "number": "12345",
        "items": [
            {"name": f"Item <{i}>", "quantity": i + 1, "price": f"{(i + 1) * 4.5:.2f}"}
            for i in range(5)
        ],
        "total": "67.50",
        "coupon": {"code": "SPRING", "amount": "5.00"},
    },
    "links": {"account": "https://shop.example/account?u=1"},
}

BASE_HTML = """<html><body>
<h1>Thanks, {name}!</h1>
<table>
{rows}</table>
<p>Total: <b>{total}</b></p>
{coupon}
<p><a href="{account}">Your account</a></p>
</body></html>
"""
BASE_TEXT = """Thanks, {name}!
{rows}Total: {total}
{coupon}
Your account: {account}
"""


def baseline(v: dict[str, Any]) -> tuple[str, str, str]:
    """The same output with str.format: what the engine is compared with."""
    esc = html.escape
    order, name = v["order"], v["customer"]["first_name"]
    coupon = order.get("coupon")
    subject = "Your receipt #{}, {}".format(esc(order["number"]), name)
    rows = "".join(
        "  <tr><td>{}</td><td>{}</td><td>{}</td></tr>\n".format(
            esc(i["name"]), i["quantity"], esc(i["price"])
        )
        for i in order["items"]
    )
    saved = (
        "<p>You saved {} with {}.</p>".format(esc(coupon["amount"]), esc(coupon["code"]))
        if coupon
        else ""
    )
    body_html = BASE_HTML.format(
        name=esc(name), rows=rows, total=esc(order["total"]), coupon=saved,
        account=esc(v["links"]["account"]),
    )  # fmt: skip
    text_rows = "".join(
        "- {} x{}: {}\n".format(esc(i["name"]), i["quantity"], esc(i["price"]))
        for i in order["items"]
    )
    text_saved = "You saved {} with {}.".format(coupon["amount"], coupon["code"]) if coupon else ""
    body_text = BASE_TEXT.format(
        name=esc(name), rows=text_rows, total=order["total"], coupon=text_saved,
        account=v["links"]["account"],
    )  # fmt: skip
    return subject, body_html, body_text


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second: best of three timed runs of about ``seconds`` each."""
    count = 1
    while True:  # calibrate a batch that takes ~50 ms
        start = time.perf_counter()
        for _ in range(count):
            fn()
        if time.perf_counter() - start > 0.05:
            break
        count *= 2
    best = 0.0
    for _ in range(3):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(count):
                fn()
            done += count
        best = max(best, done / (time.perf_counter() - start))
    return best


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    subject, body_html, body_text = (compile_template(s) for s in (SUBJECT, HTML, TEXT))

    def engine() -> tuple[str, str, str]:
        return (
            subject.render(VARIABLES),
            body_html.render(VARIABLES),
            body_text.render(VARIABLES),
        )

    plain = compile_email_template(
        id=1, uuid="u", version=1, category="receipts", subject=SUBJECT, body_html=HTML,
        body_text=TEXT,
    )  # fmt: skip
    styled = compile_email_template(
        id=1, uuid="u", version=1, category="receipts", subject=SUBJECT,
        body_html=HTML.replace("<html>", "<html>" + STYLE), body_text=None,
    )  # fmt: skip
    bare = RenderOptions(inline_css=False, text_from_html=False)
    full = RenderOptions()

    ours = engine()
    assert ours[0] == baseline(VARIABLES)[0], (ours[0], baseline(VARIABLES)[0])
    print(f"output: subject {len(ours[0])} + html {len(ours[1])} + text {len(ours[2])} chars")
    rows = [
        ("str.format baseline", rate(lambda: baseline(VARIABLES), seconds)),
        ("handlebars engine (3 fields)", rate(engine, seconds)),
        ("template render, policy only", rate(lambda: plain.render(VARIABLES, bare), seconds)),
        ("+ css-inline + text from html", rate(lambda: styled.render(VARIABLES, full), seconds)),
    ]
    reference = rows[0][1]
    print(f"{'':32} {'renders/s':>12} {'µs/render':>10} {'vs baseline':>12}")
    for name, per_second in rows:
        ratio = reference / per_second
        print(f"{name:32} {per_second:12,.0f} {1e6 / per_second:10.1f} {ratio:11.1f}x")


if __name__ == "__main__":
    main()
