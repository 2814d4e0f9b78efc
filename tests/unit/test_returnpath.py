"""VERP return paths: round trip, HMAC verification, case-insensitivity (T2.5)."""

from __future__ import annotations

import random
import string
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.domain.returnpath import MAX_LOCAL_PART, decode, encode

KEY = b"k" * 32
ID = "0b6f2a52-9c1e-4a57-8d43-2f5e9a0c7b11"


def test_round_trip() -> None:
    address = encode(ID, "example.com", key=KEY)
    assert address.startswith("b+")
    assert address.endswith("@pr-bounces.example.com")
    assert address == address.lower()
    assert decode(address, key=KEY) == ID


@given(st.uuids(), st.sampled_from(["example.com", "Mail.Example.ORG.", "a.b.c.co.uk"]))
def test_round_trip_any_uuid(delivery: uuid.UUID, domain: str) -> None:
    address = encode(str(delivery), domain, key=KEY)
    assert len(address.partition("@")[0]) <= MAX_LOCAL_PART
    assert decode(address, key=KEY) == str(delivery)


def test_uuid_spellings_normalise() -> None:
    address = encode(ID.upper().replace("-", ""), "example.com", key=KEY)
    assert decode(address, key=KEY) == ID


def test_custom_label() -> None:
    address = encode(ID, "example.com", key=KEY, label="Bounce")
    assert address.endswith("@bounce.example.com")
    assert decode(address, key=KEY, label="bounce") == ID
    assert decode(address, key=KEY) is None


def test_unicode_domain_is_written_as_a_labels() -> None:
    address = encode(ID, "bücher.example", key=KEY)
    assert address.endswith("@pr-bounces.xn--bcher-kva.example")
    assert decode(address, key=KEY) == ID


def test_wrong_key_does_not_decode() -> None:
    assert decode(encode(ID, "example.com", key=KEY), key=b"other key") is None


def test_upper_cased_and_bracketed_addresses_decode() -> None:
    address = encode(ID, "example.com", key=KEY)
    assert decode(address.upper(), key=KEY) == ID
    assert decode(f" <{address.upper()}> ", key=KEY) == ID
    assert decode(address + ".", key=KEY) == ID  # absolute domain


def _flip(ch: str) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return alphabet[(alphabet.index(ch) + 1) % 32]


def test_tampered_id_or_mac_does_not_decode() -> None:
    address = encode(ID, "example.com", key=KEY)
    local, _, host = address.partition("@")
    for i in range(2, len(local)):
        if local[i] == ".":
            continue
        tampered = local[:i] + _flip(local[i]) + local[i + 1 :]
        assert decode(f"{tampered}@{host}", key=KEY) is None, i


def test_mac_is_bound_to_the_domain() -> None:
    address = encode(ID, "example.com", key=KEY)
    local = address.partition("@")[0]
    assert decode(f"{local}@pr-bounces.evil.example", key=KEY) is None


def test_another_delivery_with_a_copied_mac_does_not_decode() -> None:
    a = encode(ID, "example.com", key=KEY)
    b = encode(str(uuid.UUID(int=1)), "example.com", key=KEY)
    forged = b.partition(".")[0] + "." + a.partition(".")[2]
    assert decode(forged, key=KEY) is None


def test_one_thousand_forged_addresses_decode_to_nothing() -> None:
    rng = random.Random(2026)
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    decoded = 0
    for _ in range(1000):
        delivery = uuid.UUID(int=rng.getrandbits(128), version=4)
        token = encode(str(delivery), "example.com", key=b"attacker").partition(".")[0]
        mac = "".join(rng.choice(alphabet) for _ in range(10))
        if decode(f"{token}.{mac}@pr-bounces.example.com", key=KEY) is not None:
            decoded += 1
    assert decoded == 0


@pytest.mark.parametrize(
    "address",
    [
        "",
        "<>",
        "postmaster@example.com",
        "b+@pr-bounces.example.com",
        "b+abc.def@pr-bounces.example.com",
        "b+" + "a" * 26 + "." + "a" * 10 + "@example.com",
        "b+" + "a" * 26 + "." + "a" * 10 + "@pr-bounces.",
        "b+" + "1" * 26 + "." + "a" * 10 + "@pr-bounces.example.com",  # not base32
        "b+" + "é" * 26 + "." + "a" * 10 + "@pr-bounces.example.com",
        "x+" + "a" * 26 + "." + "a" * 10 + "@pr-bounces.example.com",
        "b+" + "a" * 100 + "@pr-bounces.example.com",
    ],
)
def test_garbage_is_not_ours(address: str) -> None:
    assert decode(address, key=KEY) is None


def test_non_canonical_id_spelling_is_refused() -> None:
    address = encode(ID, "example.com", key=KEY)
    local, _, host = address.partition("@")
    token, _, mac = local[2:].partition(".")
    # The last base32 char carries 3 data bits and 2 padding bits; set a padding bit.
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    last = alphabet[alphabet.index(token[-1]) ^ 1]
    assert decode(f"b+{token[:-1]}{last}.{mac}@{host}", key=KEY) is None


@given(st.text(max_size=120))
def test_decode_never_raises_on_hostile_input(address: str) -> None:
    assert decode(address, key=KEY) is None


@given(st.text(alphabet=string.ascii_letters + string.digits + ".+@<>-", max_size=80))
def test_decode_never_raises_on_address_like_input(address: str) -> None:
    assert decode(address, key=KEY) is None


def test_empty_key_or_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        encode(ID, "example.com", key=b"")
    with pytest.raises(ValueError):
        decode("x@y", key=b"")
    with pytest.raises(ValueError):
        encode("not-a-uuid", "example.com", key=KEY)
    with pytest.raises(ValueError):
        encode(ID, " . ", key=KEY)
