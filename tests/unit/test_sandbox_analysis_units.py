"""Parsing spamc's report and finding HTML/CSS features (postroom.sandbox.spam/htmlcheck)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from postroom.errors import FeatureUnavailable
from postroom.sandbox import htmlcheck
from postroom.sandbox.spam import parse_report

REPORT = """6.3/5.0
Spam detection software, running on the system "vm",
has identified this incoming email as possible spam.

Content analysis details:   (6.3 points, 5.0 required)

 pts rule name              description
---- ---------------------- --------------------------------------------------
 1.8 DRUGS_ERECTILE         Refers to an erectile drug
 2.5 URIBL_STUB             Contains an URL listed in a long-named block list
                            [URIs: example.com]
-0.0 NO_RELAYS              Informational: message was not relayed via SMTP
 2.0 FREE_MONEY             Free money!

"""


def test_parse_report_reads_score_threshold_and_wrapped_rules() -> None:
    result = parse_report(REPORT)
    assert (result.score, result.threshold, result.spam) == (6.3, 5.0, True)
    assert [r.name for r in result.rules] == [
        "DRUGS_ERECTILE",
        "URIBL_STUB",
        "NO_RELAYS",
        "FREE_MONEY",
    ]
    assert result.rules[1].description.endswith("block list [URIs: example.com]")
    assert result.rules[2].points == 0.0
    report = result.report()
    assert report["ResponseMessage"] == "Spam" and report["Details"][0]["Pts"] == 1.8


def test_parse_report_refuses_what_is_not_a_report() -> None:
    with pytest.raises(FeatureUnavailable):
        parse_report("SPAMD/1.0 76 Bad header line\n")


def _found(html: str) -> dict[str, int]:
    return {e["rule_name"]: e["error_line"] for e in htmlcheck.analyze(html)}


def test_features_in_sheets_attributes_and_markup() -> None:
    found = _found(
        "<style>\n@import url(x.css);\n/* note */\n"
        "@media (prefers-color-scheme: dark) and (-webkit-min-device-pixel-ratio: 2) {\n"
        "  div > p + a ~ b, [data-x] { width: calc(100% - 2vw); --brand: red; }\n}\n</style>\n"
        '<p style="color: rgba(0,0,0,.5) !important">x</p>\n'
        '<img src="https://example.com/a.webp?x=1"><img src="data:image/svg+xml;base64,AA==">\n'
        '<a href="mailto:a@example.com">m</a><a href="#top">t</a><button>Go</button>\n'
    )
    assert found["@import"] == 2 and found["CSS comments"] == 3
    assert found["@media (prefers-color-scheme)"] == 4
    assert found["@media (-webkit-device-pixel-ratio)"] == 4
    for rule in ("Child combinator", "Adjacent sibling combinator", "General sibling combinator",
                 "Grouping selectors", "Attribute selector", "CSS calc() function", "vw unit",
                 "CSS Variables (Custom Properties)"):  # fmt: skip
        assert found[rule] == 5, rule
    assert found["rgba()"] == 8 and found["!important keyword"] == 8
    assert found["webP image format"] == 9 and found["Base 64 image format"] == 9
    assert found["mailto: links"] == 10 and found["Local anchors"] == 10
    assert found['<button type="submit"> element'] == 10


def test_plain_markup_reports_nothing_unusual() -> None:
    found = _found('<table width="600"><tr><td>Hello</td></tr></table>')
    assert not any(rule.startswith(("display", "@", "<form")) for rule in found)


def test_vendored_data_keeps_its_license() -> None:
    data_dir = Path(htmlcheck.__file__).resolve().parent.parent / "data"
    assert "MIT License" in (data_dir / "caniemail.LICENSE").read_text()
    data = json.loads((data_dir / "caniemail.json").read_text())
    assert "caniemail" in data["source"] and len(data["features"]) > 200
    groups = {client["group"] for client in data["clients"].values()}
    assert groups == {"desktop", "mobile", "web"}
