"""The pure parts of inbound threads and forward rules: thread keys, subject folding,
answer headers and quoting (domain/threading.py), rule checking and matching
(domain/forwardrules.py)."""

from __future__ import annotations

from postroom.domain import forwardrules, threading


def test_thread_keys_take_own_id_and_answered_ids() -> None:
    own, answered = threading.thread_keys(
        " <a@x> ", "<b@x> (comment)", ["<c@x>", "<b@x>", "junk", "<a@x>"]
    )
    assert own == ["<a@x>"] and answered == ["<b@x>", "<c@x>"]
    refs = [f"<r{i}@x>" for i in range(30)]
    assert threading.thread_keys(None, None, refs)[1] == refs[-threading.MAX_REFERENCES :]
    assert threading.thread_keys("not an id", None, []) == ([], [])


def test_subjects_fold_prefixes_tags_case_and_spaces() -> None:
    assert threading.subject_key("Re: FWD: [list] Re[2]:  Order   42 ") == "order 42"
    assert threading.subject_key(None) == ""
    assert threading.is_answer_subject("RE : x") and threading.is_answer_subject("Fw: x")
    assert not threading.is_answer_subject("Order 42") and not threading.is_answer_subject(None)
    assert threading.reply_subject("Re: x") == "Re: x" and threading.reply_subject("x") == "Re: x"
    assert threading.forward_subject("Fwd: x") == "Fwd: x"
    assert threading.forward_subject("a\r\nBcc: evil@x") == "Fwd: a Bcc: evil@x"


def test_reply_references_follow_rfc_5322() -> None:
    assert threading.reply_references("<c@x>", "<b@x>", ["<a@x>", "<b@x>"]) == (
        "<c@x>",
        "<a@x> <b@x> <c@x>",
    )
    # No References: the parent's In-Reply-To starts the chain.
    assert threading.reply_references("<c@x>", "<b@x>", []) == ("<c@x>", "<b@x> <c@x>")
    assert threading.reply_references(None, None, []) == (None, None)
    long = [f"<r{i}@x>" for i in range(40)]
    _, refs = threading.reply_references("<me@x>", None, long)
    assert refs is not None and len(refs.split()) == threading.MAX_REFERENCES
    assert refs.endswith("<r39@x> <me@x>")


def test_quotes() -> None:
    assert threading.quote_text("a\r\n\r\nb\n", "X wrote:") == "X wrote:\n> a\n>\n> b"
    quoted = threading.quote_html(None, "<b>", "A & B wrote:")
    assert "<pre>&lt;b&gt;</pre>" in quoted and "A &amp; B wrote:" in quoted


def _rule_errors(body: dict[str, object]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    forwardrules.parse_conditions(body.get("conditions"), errors)
    forwardrules.parse_destinations(body.get("destinations"), "me@in.example", errors)
    return errors


def test_rule_checks() -> None:
    assert _rule_errors({"destinations": [{"email": "a@b.example"}]}) == {}
    assert "destinations[0]" in _rule_errors({"destinations": [{"email": "ME@in.example"}]})
    assert "destinations" in _rule_errors({"destinations": []})
    bad = [{"match_type": "header", "operator": "equal", "value": "x", "header_key": "A: b"}]
    assert "conditions[0]" in _rule_errors(
        {"conditions": bad, "destinations": [{"email": "a@b.example"}]}
    )
    errors: dict[str, list[str]] = {}
    [empty] = forwardrules.parse_conditions(
        [{"match_type": "recipient", "operator": "empty", "value": "ignored"}], errors
    )
    assert not errors and empty.value is None


def _matches(conditions: list[dict[str, object]], **summary: object) -> bool:
    errors: dict[str, list[str]] = {}
    parsed = forwardrules.parse_conditions(conditions, errors)
    assert not errors
    return forwardrules.matches(parsed, summary)


def test_rule_matching() -> None:
    summary = {
        "from": "Alice@Sender.example",
        "to": ["desk@in.example"],
        "cc": ["bob@x.example"],
        "headers": {"x-tag": "Urgent, billing"},
    }
    assert _matches([], **summary)
    assert _matches(
        [{"match_type": "sender", "operator": "equal", "value": "alice@sender.EXAMPLE"}], **summary
    )
    assert _matches(
        [{"match_type": "recipient", "operator": "starts_with", "value": "bob"}], **summary
    )
    assert not _matches(
        [{"match_type": "recipient", "operator": "not_equal", "value": "BOB@x.example"}], **summary
    )
    assert _matches(
        [
            {
                "match_type": "header",
                "operator": "contains",
                "value": "billing",
                "header_key": "X-Tag",
            }
        ],
        **summary,
    )
    assert _matches(
        [{"match_type": "header", "operator": "empty", "header_key": "X-None"}], **summary
    )
    both = [
        {"match_type": "sender", "operator": "ends_with", "value": "@sender.example"},
        {"match_type": "recipient", "operator": "empty"},
    ]
    assert not _matches(both, **summary)
