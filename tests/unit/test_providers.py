"""The mailbox provider is read from the MX set, and consumer domains are told apart."""

from __future__ import annotations

import pytest

from postroom.domain.providers import OTHER, provider_of


@pytest.mark.parametrize(
    ("domain", "mx", "expected"),
    [
        ("gmail.com", ["gmail-smtp-in.l.google.com."], "Google"),
        ("acme.com", ["ASPMX.L.GOOGLE.COM.", "alt1.aspmx.l.google.com"], "Google Workspace"),
        ("acme.com", ["aspmx.googlemail.com"], "Google Workspace"),
        ("hotmail.com", ["hotmail-com.olc.protection.outlook.com"], "Outlook"),
        ("outlook.com", ["outlook-com.olc.protection.outlook.com"], "Outlook"),
        ("acme.com", ["acme-com.mail.protection.outlook.com"], "Office 365"),
        ("yahoo.com", ["mta5.am0.yahoodns.net"], "Yahoo"),
        ("aol.com", ["mx-aol.mail.gm0.yahoodns.net"], "Yahoo"),
        ("icloud.com", ["mx01.mail.icloud.com"], "iCloud"),
        ("acme.com", ["mx.zoho.eu"], "Zoho Email"),
        ("acme.ch", ["mail.protonmail.ch"], "ProtonMail"),
        ("yandex.ru", ["mx.yandex.ru"], "Yandex"),
        ("hey.com", ["mx.hey.com"], "Hey"),
        ("acme.com", ["in1-smtp.messagingengine.com"], "Fastmail"),
        ("acme.com", ["mx.acme.com"], OTHER),
        ("acme.com", [], OTHER),
    ],
)
def test_provider_from_mx_set(domain: str, mx: list[str], expected: str) -> None:
    assert provider_of(domain, mx) == expected


def test_suffix_matches_only_on_a_label_boundary() -> None:
    assert provider_of("acme.com", ["mx.notgoogle.com"]) == OTHER
    assert provider_of("acme.com", ["google.com.evil.example"]) == OTHER


def test_consumer_domains_are_known_without_an_mx_answer() -> None:
    assert provider_of("GMAIL.com.") == "Google"
    assert provider_of("me.com") == "iCloud"
    assert provider_of("example.org") == OTHER
