"""Tracking tokens: they round-trip, bind their kind, rotate, and no forgery verifies."""

from __future__ import annotations

import base64
import binascii
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.domain import tracktokens
from postroom.domain.tracktokens import Kind

KEY = b"k" * 32
DELIVERY = "6f1c2d3e-4a5b-4c6d-8e7f-101112131415"


def keys(key_id: int) -> bytes | None:
    return KEY if key_id in (41, 42) else None


def token(kind: Kind = Kind.CLICK, position: int = 3, key_id: int = 42) -> str:
    return tracktokens.encode(kind, DELIVERY, position, key_id=key_id, key=KEY)


def test_a_token_round_trips_in_any_letter_case() -> None:
    text = token()
    assert len(text) == tracktokens.TOKEN_CHARS and text == text.lower()
    expected = tracktokens.Token(Kind.CLICK, DELIVERY, 3, 42)
    assert tracktokens.decode(text, keys) == expected
    assert tracktokens.decode(text.upper(), keys) == expected


def test_it_carries_no_url_and_names_only_its_delivery() -> None:
    assert "http" not in token() and DELIVERY.replace("-", "") not in token()


def test_old_and_unknown_keys_do_not_verify() -> None:
    assert tracktokens.decode(token(key_id=41), keys) is not None  # previous key: still valid
    assert tracktokens.decode(token(key_id=40), keys) is None  # outside the window
    other = tracktokens.encode(Kind.CLICK, DELIVERY, 3, key_id=42, key=b"x" * 32)
    assert tracktokens.decode(other, keys) is None


def test_the_kind_and_position_are_signed() -> None:
    # Same delivery, other kind: different tokens, each decoding to its own kind.
    opening = token(Kind.OPEN, 0)
    decoded = tracktokens.decode(opening, keys)
    assert decoded is not None and decoded.kind is Kind.OPEN and decoded.position == 0


@settings(max_examples=2000, deadline=None)
@given(
    st.integers(0, tracktokens.TOKEN_CHARS - 1), st.sampled_from("abcdefghijklmnopqrstuvwxyz234567")
)
def test_every_altered_character_fails(index: int, char: str) -> None:
    text = token()
    altered = text[:index] + char + text[index + 1 :]
    if altered != text:
        assert tracktokens.decode(altered, keys) is None


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_never_verifies_nor_raises(text: str) -> None:
    assert tracktokens.decode(text, keys) is None


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=35, max_size=35))
def test_random_well_formed_tokens_never_verify(raw: bytes) -> None:
    import base64

    text = base64.b32encode(raw).decode().lower()
    assert tracktokens.decode(text, keys) is None


def test_bad_fields_are_refused_when_encoding() -> None:
    import pytest

    with pytest.raises(ValueError):
        tracktokens.encode(Kind.CLICK, DELIVERY, 2**16, key_id=1, key=KEY)
    with pytest.raises(ValueError):
        tracktokens.encode(Kind.CLICK, DELIVERY, 0, key_id=1, key=b"")
    with pytest.raises(ValueError):
        tracktokens.encode(Kind.CLICK, "not-a-uuid", 0, key_id=1, key=KEY)
    assert tracktokens.key_id_at(86400 * 30 * 5 + 1, 86400 * 30) == 5
    assert uuid.UUID(DELIVERY)


_B32_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567abcdefghijklmnopqrstuvwxyz01890+-_ =/"


@settings(max_examples=500)
@given(st.text(alphabet=_B32_CHARS, min_size=56, max_size=56))
def test_the_fast_base32_decoder_agrees_with_the_standard_one(text: str) -> None:
    """The int-based decoder reads exactly what RFC 4648's (case folded) reads."""
    try:
        expected: bytes | None = base64.b32decode(text.upper())
    except (binascii.Error, ValueError):
        expected = None
    assert tracktokens._b32decode(text) == expected


@given(st.binary(min_size=35, max_size=35))
def test_the_fast_base32_decoder_reads_every_encoded_value(raw: bytes) -> None:
    text = base64.b32encode(raw).decode().rstrip("=")
    assert tracktokens._b32decode(text.lower()) == tracktokens._b32decode(text) == raw
