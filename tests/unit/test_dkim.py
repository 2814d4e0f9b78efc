"""The DKIM signer, checked against dkimpy's verifier: verification first, then units."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from itertools import takewhile
from typing import Any

import dkim  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from dkim.canonicalization import Relaxed  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postroom.domain.dkim import (
    DEFAULT_SIGNED_HEADERS,
    DkimKey,
    generate_ed25519,
    generate_rsa,
    load_private_pem,
    private_pem,
    public_record,
    relaxed_body,
    relaxed_headers,
    sign,
)
from postroom.domain.messages import Address, Attachment, MessageDraft
from postroom.domain.mime import build_message

RSA = DkimKey("rsa2024", "example.com", "rsa-sha256", generate_rsa())
ED = DkimKey("ed2024", "example.com", "ed25519-sha256", generate_ed25519())
DATE = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SIMPLE = (
    b"From: Joe <joe@example.com>\r\n"
    b"To: ana@example.org\r\n"
    b"Subject: Is dinner ready?\r\n"
    b"\r\n"
    b"Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n"
)


def dns_for(*keys: DkimKey) -> Callable[..., bytes | None]:
    records = {
        f"{k.selector}._domainkey.{k.domain}".encode(): public_record(k.private_key).encode()
        for k in keys
    }

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name.rstrip(b"."))

    return dnsfunc


def verdicts(message: bytes, *keys: DkimKey, count: int | None = None) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature of ``message`` (or the first ``count``)."""
    if count is None:
        count = len(re.findall(rb"(?im)^dkim-signature:", message.split(b"\r\n\r\n", 1)[0]))
    verifier = dkim.DKIM(message)
    results = []
    for i in range(count):
        # DKIM.verify raises on a mismatch where dkim.verify (idx 0 only) returns False
        try:
            results.append(bool(verifier.verify(idx=i, dnsfunc=dns_for(*keys))))
        except dkim.DKIMException:
            results.append(False)
    return results


def signatures(message: bytes) -> list[dict[str, str]]:
    """The tags of each DKIM-Signature field, white space removed from the values."""
    head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    fields = re.findall(r"(?im)^DKIM-Signature:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head)
    return [
        {
            name.strip(): re.sub(r"\s+", "", value)
            for name, _, value in (tag.partition("=") for tag in field.split(";"))
        }
        for field in fields
    ]


def signature_lines(message: bytes) -> list[str]:
    """The lines of the DKIM-Signature fields at the top of ``message``."""
    lines = message.decode("utf-8").split("\r\n")
    return list(takewhile(lambda line: line.startswith(("DKIM-Signature:", " ")), lines))


def draft(**changes: Any) -> MessageDraft:
    base = MessageDraft(
        sender=Address("shop@example.com", "Example Shop"),
        to=(Address("ana@example.org", "Ana"),),
        subject="Your order has shipped",
        text="Hello Ana,\nyour order has shipped.\n",
    )
    return replace(base, **changes)


def build(d: MessageDraft) -> bytes:
    return build_message(d, message_id="<m.1@example.com>", date=DATE)


# --- every signature verifies -----------------------------------------------------------------


@pytest.mark.parametrize("key", [RSA, ED], ids=["rsa", "ed25519"])
def test_single_signature_verifies(key: DkimKey) -> None:
    signed = sign(SIMPLE, [key], timestamp=1714566600)
    assert dkim.verify(signed, dnsfunc=dns_for(key))
    assert signed.endswith(SIMPLE)


@pytest.mark.parametrize("order", [(RSA, ED), (ED, RSA)], ids=["rsa-ed", "ed-rsa"])
def test_dual_signature_both_verify_rsa_on_top(order: tuple[DkimKey, DkimKey]) -> None:
    signed = sign(SIMPLE, order)
    assert verdicts(signed, RSA, ED) == [True, True]
    assert [sig["a"] for sig in signatures(signed)] == ["rsa-sha256", "ed25519-sha256"]


PDF = bytes(range(256)) * 8
DRAFTS = {
    "text": draft(),
    "html": draft(text=None, html="<p>Hello <b>Ana</b></p>\n"),
    "text+html": draft(html="<p>Hello  Ana,\t<b>shipped</b></p>\n" * 30),
    "attachments": draft(
        html='<p><img src="cid:logo"></p>',
        attachments=(
            Attachment(PDF, "invoice.pdf", "application/pdf"),
            Attachment(PDF[:300], "logo.png", "image/png", "inline", "logo"),
            Attachment(b"a,b\n1,2\n", "données été.csv", "text/csv"),
        ),
    ),
    "non-ascii": draft(
        sender=Address("shop@example.com", "Café Zürich"),
        to=(Address("ana@example.org", "Ana Müller"),),
        subject="Grüße aus Köln — 東京 📦",
        text="Grüße, Ana!  \n\tÇa va ?\n",
    ),
    "folded": draft(
        subject="A very long subject line " * 8,
        to=tuple(Address(f"person{i}@example.org", f"Person Number {i}") for i in range(8)),
        cc=(Address("boss@example.org"),),
        reply_to=Address("support@example.com", "Support"),
    ),
    "list": draft(
        headers=(
            ("List-Unsubscribe", "<https://example.com/u/abc>, <mailto:u@example.com>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("List-Id", "News <news.example.com>"),
            ("X-Campaign", "spring"),
        ),
    ),
    "trailing-white-space": draft(text="line with spaces   \n\n\n", html="<p>x</p>\t \n\n"),
}


@pytest.mark.parametrize("name", DRAFTS)
def test_built_messages_verify(name: str) -> None:
    message = build(DRAFTS[name])
    assert verdicts(sign(message, [RSA, ED], timestamp=1714566600), RSA, ED) == [True, True]


HAND_WRITTEN = {
    "trailing spaces": b"From: a@example.com\r\nSubject: x  \r\n\r\nline   \r\nnext\t\r\n",
    "tabs and runs": b"From:\ta@example.com\r\nSubject:\t x \t y\r\n\r\n\ta \t  b\t\tc\r\n",
    "empty lines at end": b"From: a@example.com\r\n\r\nbody\r\n\r\n\r\n \r\n\t\r\n",
    "empty body": b"From: a@example.com\r\nTo: b@example.org\r\n\r\n",
    "only empty lines": b"From: a@example.com\r\n\r\n\r\n\r\n",
    "no blank line": b"From: a@example.com\r\nSubject: headers only\r\n",
    "no final CRLF": b"From: a@example.com\r\n\r\nlast line without break  ",
    "folded headers": (
        b"From: Someone\r\n <a@example.com>\r\nSubject: one\r\n\ttwo\r\n   three  \r\n"
        b"To:\r\n b@example.org,\r\n\tc@example.org\r\n\r\nbody\r\n"
    ),
    "repeated headers": (
        b"Received: one\r\nTo: a@example.org\r\nFrom: x@example.com\r\nTo: b@example.org\r\n"
        b"Received: two\r\n\r\nbody\r\n"
    ),
    "empty value": b"From: a@example.com\r\nSubject:\r\nCc: \r\n\r\nx\r\n",
    "8-bit body": "From: a@example.com\r\n\r\nGrüße  \r\n€\t\r\n".encode(),
    "utf-8 header": "From: José <josé@example.com>\r\nSubject: naïve\r\n\r\nx\r\n".encode(),
    "existing signature": b"DKIM-Signature: v=1; foo\r\n" + SIMPLE,
}


@pytest.mark.parametrize("name", HAND_WRITTEN)
def test_hand_written_messages_verify(name: str) -> None:
    signed = sign(HAND_WRITTEN[name], [RSA, ED])
    assert verdicts(signed, RSA, ED, count=2) == [True, True]


_WORD = st.text(
    st.characters(min_codepoint=33, max_codepoint=126) | st.sampled_from("éü€"),
    min_size=1,
    max_size=8,
)
_SEP = st.sampled_from([" ", "\t", "  ", " \t ", "\r\n ", "\r\n\t", "  \r\n  "])


@st.composite
def header_value(draw: st.DrawFn) -> str:
    words = draw(st.lists(_WORD, max_size=6))
    value = draw(st.sampled_from(["", " ", "\t"]))
    for word in words:
        value += word + draw(_SEP)
    return value + draw(st.sampled_from(["", " ", "\t "]))


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    names = st.sampled_from(["Subject", "To", "Cc", "Date", "Received", "X-Tag", "List-Id"])
    fields = draw(st.lists(st.tuples(names, header_value()), max_size=8))
    fields.insert(draw(st.integers(0, len(fields))), ("From", draw(header_value())))
    head = "".join(f"{name}:{value}\r\n" for name, value in fields)
    line = st.text(st.sampled_from("ab \t.=é"), max_size=20)
    lines = draw(st.lists(line, max_size=10))
    body = "".join(f"{text}\r\n" for text in lines) + draw(st.sampled_from(["", "\r\n", "x "]))
    blank = "\r\n" if body else draw(st.sampled_from(["\r\n", ""]))  # "": header only
    return (head + blank + body).encode("utf-8")


@PROPERTY
@given(messages(), st.one_of(st.none(), st.integers(0, 1_700_000_000)))  # dkimpy refuses t= ahead
def test_random_messages_verify(message: bytes, timestamp: int | None) -> None:
    signed = sign(message, [RSA, ED], timestamp=timestamp)
    assert verdicts(signed, RSA, ED) == [True, True]


# --- what breaks a signature, and what does not -----------------------------------------------

LIST = build(DRAFTS["list"])


def _tamper(message: bytes, old: bytes, new: bytes) -> bytes:
    assert old in message
    return message.replace(old, new, 1)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: _tamper(m, b"Hello Ana", b"Hello Bob"),
        lambda m: m + b"PS: one more line\r\n",
        lambda m: _tamper(m, b"Subject: Your order", b"Subject: Your parcel"),
        lambda m: _tamper(m, b"From: ", b"From: Evil <evil@example.net>\r\nFrom: "),
        lambda m: _tamper(m, b"\r\n\r\n", b"\r\nFrom: evil@example.net\r\n\r\n"),
        lambda m: _tamper(m, b"One-Click", b"Two-Click"),
        lambda m: _tamper(m, b"List-Unsubscribe-Post", b"X-Was-List-Unsubscribe-Post"),
    ],
    ids=["body", "appended-body", "subject", "from-on-top", "from-at-bottom", "post", "removed"],
)
@pytest.mark.parametrize("key", [RSA, ED], ids=["rsa", "ed25519"])
def test_tampering_breaks_the_signature(tamper: Callable[[bytes], bytes], key: DkimKey) -> None:
    signed = sign(LIST, [key])
    assert verdicts(signed, key) == [True]
    assert verdicts(tamper(signed), key) == [False]


@pytest.mark.parametrize(
    "change",
    [
        lambda m: _tamper(m, b"Subject: Your order", b"Subject:\r\n \t Your   order"),
        lambda m: _tamper(m, b"Hello Ana,", b"Hello \t Ana,   "),
        lambda m: m + b"\r\n\r\n",
        lambda m: _tamper(m, b"X-Campaign: spring", b"X-Campaign: autumn"),
        lambda m: _tamper(m, b"\r\n\r\n", b"\r\nReceived: by relay.example.net\r\n\r\n"),
    ],
    ids=["refolded-header", "body-white-space", "trailing-empty-lines", "unsigned", "added"],
)
def test_relaxed_changes_keep_the_signature(change: Callable[[bytes], bytes]) -> None:
    signed = sign(LIST, [RSA, ED])
    assert verdicts(change(signed), RSA, ED) == [True, True]


def test_repeated_fields_are_signed_bottom_up() -> None:
    message = HAND_WRITTEN["repeated headers"]
    signed = sign(message, [ED])
    assert signatures(signed)[0]["h"].split(":").count("to") == 3  # two, oversigned
    swapped = signed.replace(b"a@example.org", b"b@example.org", 1)
    swapped = swapped.replace(b"To: b@example.org\r\nReceived", b"To: a@example.org\r\nReceived")
    assert verdicts(swapped, ED) == [False]


# --- the signature field ----------------------------------------------------------------------


def test_tags() -> None:
    signed = sign(SIMPLE, [RSA], timestamp=1714566600)
    tags = signatures(signed)[0]
    assert list(tags) == ["v", "a", "c", "d", "s", "t", "h", "bh", "b"]
    assert tags["v"] == "1"
    assert tags["a"] == "rsa-sha256"
    assert tags["c"] == "relaxed/relaxed"
    assert (tags["d"], tags["s"]) == ("example.com", "rsa2024")
    assert tags["t"] == "1714566600"
    assert tags["h"] == "from:from:to:to:subject:subject"
    body = SIMPLE.split(b"\r\n\r\n", 1)[1]
    assert tags["bh"] == base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode()
    assert tags["bh"] == "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="  # RFC 6376 / 8463
    assert len(base64.b64decode(tags["b"])) == 256
    assert "t" not in signatures(sign(SIMPLE, [ED]))[0]


def test_default_header_list_and_oversigned_from() -> None:
    tags = signatures(sign(LIST, [RSA]))[0]
    h = tags["h"].split(":")
    assert h[:2] == ["from", "from"]  # one From, listed twice
    for name in ("list-unsubscribe", "list-unsubscribe-post", "list-id", "subject", "to"):
        assert name in h
    assert "x-campaign" not in h
    order = [name.lower() for name in DEFAULT_SIGNED_HEADERS]
    assert h[1:] == sorted(h[1:], key=order.index)


@pytest.mark.parametrize("name", ["Subject", "To", "Date", "Message-ID"])
def test_a_copy_of_an_oversigned_field_added_later_breaks_the_signature(name: str) -> None:
    signed = sign(LIST, [RSA, ED])
    added = f"{name}: replayed\r\n".encode() + signed
    assert verdicts(added, RSA, ED) == [False, False]


def test_custom_header_list() -> None:
    signed = sign(LIST, [ED], headers=["subject", "X-CAMPAIGN", "Subject", "Absent"])
    assert signatures(signed)[0]["h"] == "from:from:subject:subject:x-campaign"
    assert verdicts(signed, ED) == [True]
    for bad in ("Bad Name", "x:y", "Ünicode", ""):
        with pytest.raises(ValueError, match="header name"):
            sign(LIST, [ED], headers=[bad])


@pytest.mark.parametrize("name", ["folded", "list", "non-ascii"])
def test_signature_field_is_folded(name: str) -> None:
    long = replace(ED, domain="mail-" + "x" * 50 + ".example.com", selector="s" * 40)
    signed = sign(build(DRAFTS[name]), [RSA, ED, long], timestamp=1714566600)
    lines = signature_lines(signed)
    assert len(lines) > 6
    assert all(len(line) <= 78 for line in lines)
    assert all(line.startswith(("DKIM-Signature: v=1;", " ")) for line in lines)
    assert verdicts(signed, RSA, ED, long) == [True, True, True]


def test_message_without_final_crlf_gets_one() -> None:
    signed = sign(b"From: a@example.com\r\n\r\nno break", [ED])
    assert signed.endswith(b"\r\n\r\nno break\r\n")


# --- canonicalization -------------------------------------------------------------------------


def test_relaxed_header_example_rfc6376_3_4_5() -> None:
    assert relaxed_headers(b"A: X\r\nB : Y\t\r\n\tZ  \r\n") == b"a:X\r\nb:Y Z\r\n"


def test_relaxed_body_example_rfc6376_3_4_5() -> None:
    assert relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n") == b" C\r\nD E\r\n"


@pytest.mark.parametrize(
    ("body", "canonical"),
    [
        (b"", b""),
        (b"\r\n", b""),
        (b"\r\n \r\n\t\r\n", b""),
        (b"x", b"x\r\n"),
        (b"x \t", b"x \r\n"),  # as dkimpy: the CRLF is added after the last line's WSP
        (b"a\r\n\r\nb\r\n", b"a\r\n\r\nb\r\n"),
        (b"\t\r\n x", b"\r\n x\r\n"),
    ],
)
def test_relaxed_body_edges(body: bytes, canonical: bytes) -> None:
    assert relaxed_body(body) == canonical


def test_empty_body_hash() -> None:
    tags = signatures(sign(b"From: a@example.com\r\n\r\n", [ED]))[0]
    assert tags["bh"] == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # sha256 of nothing


@PROPERTY
@given(st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"\r\n").replace(b"\r\r", b"\r")))
def test_relaxed_body_matches_dkimpy(body: bytes) -> None:
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


@PROPERTY
@given(messages())
def test_relaxed_headers_match_dkimpy(message: bytes) -> None:
    head = message.split(b"\r\n\r\n", 1)[0].rstrip(b"\r\n") + b"\r\n"
    fields, _ = dkim.rfc822_parse(head + b"\r\n")
    expected = b"".join(name + b":" + value for name, value in Relaxed.canonicalize_headers(fields))
    assert relaxed_headers(head) == expected


# RFC 8463 Appendix A: its Ed25519 key, message and signature (Ed25519 is deterministic).
RFC8463_SEED = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
RFC8463_HEAD = (
    b"From: Joe SixPack <joe@football.example.com>\r\n"
    b"To: Suzie Q <suzie@shopping.example.net>\r\n"
    b"Subject: Is dinner ready?\r\n"
    b"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    b"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
)
RFC8463_SIGNATURE = (
    b"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    b" d=football.example.com; i=@football.example.com;\r\n"
    b" q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
    b" subject : date : message-id : from : subject : date;\r\n"
    b" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    b" b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
    b" Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
)


def test_rfc8463_vector() -> None:
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(RFC8463_SEED))
    record = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
    assert public_record(key) == record
    message = (
        RFC8463_SIGNATURE + RFC8463_HEAD + SIMPLE.split(b"\r\n\r\n", 1)[1].join([b"\r\n", b""])
    )
    assert dkim.verify(message, dnsfunc=lambda name, timeout=5: record.encode())
    # the header hash input, built with our canonicalization, reproduces the RFC's b=
    unsigned = RFC8463_SIGNATURE.split(b" b=")[0] + b" b=\r\n"
    data = relaxed_headers(RFC8463_HEAD) + relaxed_headers(unsigned)[:-2]
    expected = re.sub(rb"\s", b"", RFC8463_SIGNATURE.split(b" b=")[1])
    assert base64.b64encode(key.sign(hashlib.sha256(data).digest())) == expected


# --- keys -------------------------------------------------------------------------------------


def test_public_record_rsa() -> None:
    record = public_record(RSA.private_key)
    match = re.fullmatch(r"v=DKIM1; k=rsa; p=([A-Za-z0-9+/]+=*)", record)
    assert match
    public = serialization.load_der_public_key(base64.b64decode(match[1]))
    assert public == RSA.private_key.public_key()
    assert public_record(RSA.private_key.public_key()) == record


def test_public_record_ed25519() -> None:
    record = public_record(ED.private_key)
    match = re.fullmatch(r"v=DKIM1; k=ed25519; p=([A-Za-z0-9+/]{43}=)", record)
    assert match
    raw = ED.private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert base64.b64decode(match[1]) == raw


@pytest.mark.parametrize("key", [RSA, ED], ids=["rsa", "ed25519"])
def test_pem_round_trip(key: DkimKey) -> None:
    pem = private_pem(key.private_key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, unencrypted
    loaded = load_private_pem(pem)
    assert public_record(loaded) == public_record(key.private_key)
    assert isinstance(loaded, RSAPrivateKey if key.algorithm == "rsa-sha256" else Ed25519PrivateKey)


def test_load_private_pem_rejects_other_keys() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="not an RSA or Ed25519 key"):
        load_private_pem(pem)
    encrypted = ED.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(ValueError):
        load_private_pem(encrypted)


def test_key_validation() -> None:
    with pytest.raises(ValueError, match="RSA private key"):
        DkimKey("s", "example.com", "rsa-sha256", ED.private_key)
    with pytest.raises(ValueError, match="Ed25519 private key"):
        DkimKey("s", "example.com", "ed25519-sha256", RSA.private_key)
    with pytest.raises(ValueError, match="unknown DKIM algorithm"):
        DkimKey("s", "example.com", "rsa-sha1", RSA.private_key)  # type: ignore[arg-type]
    for selector in ("", "a b", "s;b=x", "s.", "münchen"):
        with pytest.raises(ValueError, match="selector"):
            DkimKey(selector, "example.com", "ed25519-sha256", ED.private_key)
    with pytest.raises(ValueError, match="domain"):
        DkimKey("s", "example.com.", "ed25519-sha256", ED.private_key)
    with pytest.raises(ValueError, match="1024"):
        generate_rsa(768)


# --- refused input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"From: a@example.com\n\nbody\n", "bare LF"),
        (b"From: a@example.com\r\n\r\nline\nline\r\n", "bare LF"),
        (b"To: b@example.org\r\n\r\nbody\r\n", "no From"),
        (b"\r\nbody\r\n", "no From"),
        (b" folded: first\r\nFrom: a@example.com\r\n\r\n", "continuation"),
        (b"From a@example.com Mon Jan 1\r\nFrom: a@example.com\r\n\r\n", "not a header field"),
        (b"From: a@example.com\r\nBad Name: x\r\n\r\n", "not a header field"),
    ],
)
def test_refused_messages(message: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        sign(message, [ED])


def test_refused_arguments() -> None:
    with pytest.raises(ValueError, match="no DKIM key"):
        sign(SIMPLE, [])
    with pytest.raises(ValueError, match="negative timestamp"):
        sign(SIMPLE, [ED], timestamp=-1)
