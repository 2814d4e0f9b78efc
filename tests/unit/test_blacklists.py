"""The DNS blocklist check's pure parts: what is looked up and how answers are read."""

from __future__ import annotations

import pytest

from postroom.sandbox.blacklists import ip_name, sender_domain, verdict


@pytest.mark.parametrize(
    ("sender", "domain"),
    [
        ("news@mail.shop.example.com", "example.com"),
        ("a@sub.example.co.uk", "example.co.uk"),
        ("a@Bücher.example.DE.", "example.de"),
        ("a@xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("a@[192.0.2.1]", None),
        ("a@localhost", None),
        ("no-at-sign", None),
        ("a@bad_label.com", None),
    ],
)
def test_sender_domain_is_the_registrable_domain(sender: str, domain: str | None) -> None:
    assert sender_domain(sender) == domain


def test_ip_names_are_reversed_and_only_public_addresses_are_asked() -> None:
    assert ip_name("93.184.216.34") == ("34.216.184.93", None)
    assert ip_name("::ffff:93.184.216.34") == ("34.216.184.93", None)
    name, why = ip_name("2a00:1450:4001:81c::2004")
    assert why is None and name is not None
    assert name.startswith("4.0.0.2.0.0.0.0") and name.endswith("1.0.0.4.0.5.4.1.0.0.a.2")
    assert len(name.split(".")) == 32
    for address, word in (
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", "not a public"),
    ):
        name, why = ip_name(address)
        assert name is None and why is not None and word in why, (address, why)
    assert ip_name(None)[1] == "no client address was recorded for this message"
    assert "not an IP address" in str(ip_name("testclient")[1])


def test_answers_are_read_by_the_lists_return_codes() -> None:
    assert verdict([]) == (False, None)
    assert verdict(["127.0.0.2"]) == (True, None)
    assert verdict(["127.0.1.2", "::1"]) == (True, None)
    assert verdict(["::2"]) == (False, None)  # AAAA answers say nothing
    for refused in ("127.0.0.1", "127.255.255.254", "127.255.255.255"):
        listed, error = verdict([refused])
        assert not listed and error is not None and "refused" in error
    listed, error = verdict(["198.51.100.7"])
    assert not listed and error is not None and "outside 127.0.0.0/8" in error
