"""Pure parts of F11: access levels → scopes, RFC 6238 vectors, audit redaction/hash."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from postroom.domain import access, audit, totp
from postroom.domain.access import Permission


def test_rfc6238_vectors_sha1() -> None:
    # RFC 6238 appendix B (SHA-1 seed), last six digits of the eight-digit codes.
    secret = base64.b32encode(b"12345678901234567890").decode()
    vectors = {59: "287082", 1111111109: "081804", 1234567890: "005924", 2000000000: "279037"}
    for seconds, code in vectors.items():
        assert totp.code_at(secret, datetime.fromtimestamp(seconds, UTC)) == code


def test_totp_window_and_format() -> None:
    secret = totp.new_secret(b"\x01" * 20)
    now = datetime.fromtimestamp(1_700_000_000, UTC)
    current = totp.step(now)
    assert totp.matching_step(secret, totp.hotp(secret, current - 1), now) == current - 1
    assert totp.matching_step(secret, totp.hotp(secret, current + 2), now) is None
    assert totp.matching_step(secret, "12345", now) is None
    assert totp.matching_step(secret, "abcdef", now) is None
    assert totp.provisioning_uri(secret, "a@b.example").startswith("otpauth://totp/Postroom%3A")


def test_access_levels_map_onto_scopes() -> None:
    admin = access.grant([Permission("account", 1, 100)], ())
    assert admin.scopes == {"admin"} and admin.account_wide and admin.domain_ids is None
    viewer = access.grant([Permission("account", 1, 10)], ())
    assert viewer.scopes == {"read"} and viewer.account_wide
    domain = access.grant([Permission("domain", 7, 100)], ())
    assert domain.scopes == {"send"} and not domain.account_wide
    assert domain.domain_ids == {7} and domain.sandbox_ids == frozenset()
    mixed = access.grant([Permission("account", 1, 10), Permission("sandbox", 3, 100)], ())
    assert mixed.scopes == {"read", "send"} and mixed.sandbox_ids == {3} and mixed.account_wide
    # Viewer below the account grants nothing; legacy tokens keep their stored scopes.
    assert access.grant([Permission("project", 2, 10)], ()).scopes == frozenset()
    legacy = access.grant([], ["send"])
    assert legacy.scopes == {"send"} and legacy.account_wide and legacy.domain_ids is None
    org = access.grant([Permission("organization", 1, 100), Permission("account", 1, 100)], ())
    assert org.organization_admin
    assert access.level("viewer") == 10 and access.level("100") == 100 and access.level(50) is None
    assert access.level(True) is None
    assert access.resource_type("inbox") == "sandbox" and access.resource_type("billing") is None


def test_audit_redacts_secrets_and_chains() -> None:
    shown = audit.redact(
        {"name": "x", "password": "p", "nested": {"api_key": "k", "token_id": 3}, "raw": b"1"}
    )
    assert shown == {
        "name": "x",
        "password": audit.REDACTED,
        "nested": {"api_key": audit.REDACTED, "token_id": 3},
        "raw": audit.REDACTED,
    }
    entry = {"id": 1, "action": "a", "created_at": datetime(2026, 1, 1, tzinfo=UTC)}
    first = audit.entry_hash(audit.GENESIS, entry)
    assert first != audit.entry_hash(audit.GENESIS, {**entry, "action": "b"})
    assert first != audit.entry_hash("1" * 64, entry)
