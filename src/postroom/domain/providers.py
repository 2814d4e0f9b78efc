"""Which mailbox provider hosts a recipient: the contract's ``email_service_provider``.

The provider is read from the recipient domain's MX set, not from the domain name alone:
``acme.com`` hosted by Google is "Google Workspace", and its reputation, throttling and
inbox placement follow Google's rules, not acme's. Consumer domains of a provider
(``gmail.com``, ``outlook.com``, ``yahoo.com``…) are told apart from business tenants on
the same MX hosts because the contract's enum does (``Google`` vs ``Google Workspace``,
``Outlook`` vs ``Office 365``).

The names are the contract's (its OAS enum: ``Google, Yahoo, Outlook, Hey, Google
Workspace, Zoho Email, ProtonMail, Yandex, iCloud, Office 365, …``); providers past the
enum's listed ones use their common brand name; anything unknown is ``Other``.
"""

from __future__ import annotations

from collections.abc import Iterable

OTHER = "Other"

# (MX host suffix, provider for business domains, consumer domains with their own name).
# Suffixes are matched on a label boundary; the first matching row wins, so the more
# specific Microsoft suffix comes before the general one.
_MX_RULES: tuple[tuple[str, str, str, frozenset[str]], ...] = (
    (
        "google.com",
        "Google Workspace",
        "Google",
        frozenset({"gmail.com", "googlemail.com"}),
    ),
    ("googlemail.com", "Google Workspace", "Google", frozenset({"gmail.com", "googlemail.com"})),
    (
        "olc.protection.outlook.com",
        "Outlook",
        "Outlook",
        frozenset(),
    ),
    (
        "protection.outlook.com",
        "Office 365",
        "Outlook",
        frozenset({"outlook.com", "hotmail.com", "live.com", "msn.com", "passport.com"}),
    ),
    ("hotmail.com", "Outlook", "Outlook", frozenset()),
    ("yahoodns.net", "Yahoo", "Yahoo", frozenset()),
    ("icloud.com", "iCloud", "iCloud", frozenset()),
    ("me.com", "iCloud", "iCloud", frozenset()),
    ("zoho.com", "Zoho Email", "Zoho Email", frozenset()),
    ("zoho.eu", "Zoho Email", "Zoho Email", frozenset()),
    ("zoho.in", "Zoho Email", "Zoho Email", frozenset()),
    ("protonmail.ch", "ProtonMail", "ProtonMail", frozenset()),
    ("proton.me", "ProtonMail", "ProtonMail", frozenset()),
    ("yandex.net", "Yandex", "Yandex", frozenset()),
    ("yandex.ru", "Yandex", "Yandex", frozenset()),
    ("hey.com", "Hey", "Hey", frozenset()),
    ("messagingengine.com", "Fastmail", "Fastmail", frozenset()),
    ("mail.ru", "Mail.ru", "Mail.ru", frozenset()),
    ("gmx.net", "GMX", "GMX", frozenset()),
    ("web.de", "Web.de", "Web.de", frozenset()),
    ("comcast.net", "Comcast", "Comcast", frozenset()),
    ("amazonaws.com", "Amazon WorkMail", "Amazon WorkMail", frozenset()),
    ("mimecast.com", "Mimecast", "Mimecast", frozenset()),
    ("pphosted.com", "Proofpoint", "Proofpoint", frozenset()),
    ("barracudanetworks.com", "Barracuda", "Barracuda", frozenset()),
)

# Consumer domains whose provider is known even before (or without) an MX answer, e.g. a
# bounce that arrives after the route cache expired.
_CONSUMER_DOMAINS: dict[str, str] = {
    "gmail.com": "Google",
    "googlemail.com": "Google",
    "outlook.com": "Outlook",
    "hotmail.com": "Outlook",
    "live.com": "Outlook",
    "msn.com": "Outlook",
    "yahoo.com": "Yahoo",
    "ymail.com": "Yahoo",
    "rocketmail.com": "Yahoo",
    "aol.com": "Yahoo",
    "icloud.com": "iCloud",
    "me.com": "iCloud",
    "mac.com": "iCloud",
    "zohomail.com": "Zoho Email",
    "protonmail.com": "ProtonMail",
    "proton.me": "ProtonMail",
    "pm.me": "ProtonMail",
    "yandex.ru": "Yandex",
    "yandex.com": "Yandex",
    "hey.com": "Hey",
    "fastmail.com": "Fastmail",
    "mail.ru": "Mail.ru",
    "gmx.net": "GMX",
    "gmx.de": "GMX",
    "web.de": "Web.de",
    "comcast.net": "Comcast",
}


def _normal(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _under(host: str, suffix: str) -> bool:
    return host == suffix or host.endswith("." + suffix)


def provider_of(recipient_domain: str, mx_hosts: Iterable[str] = ()) -> str:
    """The mailbox provider of ``recipient_domain`` given its MX host names (any order)."""
    domain = _normal(recipient_domain)
    for raw in mx_hosts:
        host = _normal(raw)
        for suffix, business, consumer, consumer_domains in _MX_RULES:
            if _under(host, suffix):
                if domain in consumer_domains or _CONSUMER_DOMAINS.get(domain) == consumer:
                    return consumer
                return business
    return _CONSUMER_DOMAINS.get(domain, OTHER)
