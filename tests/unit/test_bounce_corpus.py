"""The bounce/complaint parser against the labelled real-world corpus in tests/data/bounces.

The corpus is sisimai's (BSD-2, see tests/data/bounces/LICENSE-sisimai.txt and README.md):
127 messages from 56 MTAs and providers. ``bench/bounces.py`` prints the per-MTA table
recorded in docs/benchmarks.md; this test holds the floor the issue sets (95 %).
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.mta.classify import BounceCategory
from postroom.mta.reports import ReportKind, Verdict, parse_report

CORPUS = Path(__file__).resolve().parent.parent / "data" / "bounces"


def _bench_module(name: str) -> ModuleType:
    """Load ``bench/<name>.py`` by its path. Not through sys.path: bench/ holds dkim.py,
    which would shadow dkimpy's ``dkim`` for every test collected after this one."""
    path = CORPUS.parent.parent.parent / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_bounces = _bench_module("bounces")
judge, measure = _bounces.judge, _bounces.measure


def _raw(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def test_corpus_accuracy_is_at_least_95_percent() -> None:
    right, total, _, misses, _ = measure(CORPUS)
    assert total == 127
    assert right / total >= 0.95, misses


def test_every_label_kind_is_represented_and_measured() -> None:
    rows = list(csv.DictReader((CORPUS / "labels.csv").read_text("utf-8").splitlines()))
    kinds = {row["hard_or_soft"] for row in rows}
    assert kinds == {"hard", "soft", "complaint", "none"}
    # Complaints and non-bounces are all right: they decide suppressions most directly.
    for row in rows:
        if row["hard_or_soft"] in ("complaint", "none"):
            assert judge(_raw(row["file"]), row["recipient"]) == row["hard_or_soft"], row


@pytest.mark.parametrize(
    ("name", "recipient", "category", "enhanced"),
    [
        ("postfix-01.eml", "kijitora@example.co.jp", BounceCategory.BAD_MAILBOX, "5.1.1"),
        ("postfix-03.eml", "kijitora@neko.example.jp", BounceCategory.BAD_DOMAIN, "5.4.4"),
        ("dragonfly-01.eml", "mailboxfull@libsisimai.net", BounceCategory.MAILBOX_FULL, "5.2.2"),
        ("postfix-09.eml", None, BounceCategory.AUTHENTICATION, "5.7.26"),
        ("godaddy-mx-01.eml", None, BounceCategory.SPAM_BLOCK, "5.1.3"),
        ("postfix-11.eml", None, BounceCategory.POLICY, "5.2.1"),
    ],
)
def test_category_and_status(
    name: str, recipient: str | None, category: BounceCategory, enhanced: str
) -> None:
    report = parse_report(_raw(name))
    assert report.kind is ReportKind.BOUNCE
    [found] = report.recipients
    if recipient is not None:
        assert found.recipient == recipient
    assert found.classification.category is category
    assert found.classification.enhanced == enhanced


def test_arf_report_names_the_complainant_and_the_original() -> None:
    report = parse_report(_raw("arf-yahoo-01.eml"))
    assert report.kind is ReportKind.COMPLAINT
    assert report.feedback_type == "abuse"
    assert report.verdict is Verdict.COMPLAINT
    assert report.original_message_id


def test_opt_out_and_auth_failure_reports() -> None:
    assert parse_report(_raw("apple-mail-unsubscribe-01.eml")).kind is ReportKind.UNSUBSCRIBE
    assert parse_report(_raw("arf-opendmarc-01.eml")).kind is ReportKind.OTHER


def test_auto_replies_are_recognised() -> None:
    for name in ("autoreply-01.eml", "autoreply-02.eml", "autoreply-03.eml"):
        assert parse_report(_raw(name)).kind is ReportKind.AUTO_REPLY


def test_delay_warnings_are_never_hard() -> None:
    for name in ("gmail-03.eml", "gmail-04.eml", "outlook-com-04.eml"):
        assert parse_report(_raw(name)).verdict is not Verdict.HARD


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff garbage",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n",
        b"Content-Type: message/feedback-report\n\nFeedback-Type",
        b"From: MAILER-DAEMON@x\nSubject: Undelivered\n\n550 5.1.1 <",
        b'x-amz-sns-message-id: 1\n\n{"notificationType": [}',
    ],
)
def test_hostile_input_never_raises(raw: bytes) -> None:
    parse_report(raw)


_SAMPLES = sorted(p.name for p in CORPUS.glob("*.eml"))


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(_SAMPLES),
    cut=st.floats(min_value=0.0, max_value=1.0),
    noise=st.binary(max_size=64),
    at=st.floats(min_value=0.0, max_value=1.0),
)
def test_mangled_reports_never_raise(name: str, cut: float, noise: bytes, at: float) -> None:
    """reliability.md T2.3: the parser survives damaged and hostile reports."""
    raw = _raw(name)
    raw = raw[: int(len(raw) * cut)] if cut < 0.5 else raw
    spot = int(len(raw) * at)
    report = parse_report(raw[:spot] + noise + raw[spot:])
    assert all(len(r.recipient) <= 1000 for r in report.recipients)
