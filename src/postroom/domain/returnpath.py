"""The VERP envelope sender: identifies one delivery and cannot be forged.

Norms (reference/reliability.md §2.7, T2.4/T2.5):

* RFC 5321 §4.1.1.2 (MAIL FROM) — bounces go to the reverse-path, so a per-delivery
  reverse-path ("Variable Envelope Return Path") names the bounced delivery by the address
  the bounce arrives at, independent of the (often non-standard, often redacted) DSN body.
* RFC 5321 §4.5.3.1.1 — a local part is at most 64 octets.
* T2.5 — 1,000 forged bounces to VERP addresses with a wrong HMAC cause 0 suppressions:
  the address carries an HMAC so nobody can make us suppress an arbitrary delivery.

Format: ``b+<id>.<mac>@<label>.<domain>`` where ``<id>`` is the delivery UUID's 16 bytes in
lower-case base32 without padding (26 chars) and ``<mac>`` is the first 10 lower-case base32
chars (50 bits) of HMAC-SHA256(key, uuid bytes + domain). Everything is lower-case and
parsed case-insensitively: some MTAs lower-case (or upper-case) local parts, which RFC 5321
§2.4 permits them to do only by convention, so the token must survive either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid

PREFIX = "b+"
DEFAULT_LABEL = "pr-bounces"
MAC_CHARS = 10
ID_CHARS = 26  # base32 of 16 bytes, padding removed
MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _normalize_domain(domain: str) -> str:
    """Lower-case, no trailing dot, A-labels: the form both signer and verifier MAC."""
    domain = domain.strip().rstrip(".").lower()
    if not domain:
        raise ValueError("domain is empty")
    if not domain.isascii():
        # A Unicode domain is MACed and written as its A-label (RFC 5890) form.
        domain = domain.encode("idna").decode("ascii")
    return domain


def _mac(key: bytes, delivery: uuid.UUID, domain: str) -> str:
    if not key:
        # An empty key makes the MAC computable by anyone: refuse rather than sign weakly.
        raise ValueError("the VERP key must not be empty")
    digest = hmac.new(key, delivery.bytes + domain.encode("ascii"), hashlib.sha256).digest()
    return _b32(digest)[:MAC_CHARS]


def encode(delivery_id: str, domain: str, *, key: bytes, label: str = DEFAULT_LABEL) -> str:
    """The return path for ``delivery_id`` (a UUID string) under ``label.domain``.

    Raises ValueError for a malformed UUID, an empty domain or an empty key.
    """
    delivery = uuid.UUID(delivery_id)
    domain = _normalize_domain(domain)
    local = f"{PREFIX}{_b32(delivery.bytes)}.{_mac(key, delivery, domain)}"
    # 2 + 26 + 1 + 10 = 39 octets: always inside the RFC 5321 limit.
    assert len(local) <= MAX_LOCAL_PART
    return f"{local}@{label.lower()}.{domain}"


def decode(address: str, *, key: bytes, label: str = DEFAULT_LABEL) -> str | None:
    """The delivery id (canonical UUID string) if ``address`` is ours and verifies, else None.

    Accepts ``<addr>`` and any letter case. Never raises on hostile input (a bounce's
    recipient address is attacker-controlled); raises ValueError only for an empty key.
    """
    if not key:
        raise ValueError("the VERP key must not be empty")
    addr = address.strip()
    if addr.startswith("<") and addr.endswith(">"):
        addr = addr[1:-1].strip()
    if not addr.isascii():
        return None
    addr = addr.lower()
    local, at, host = addr.rpartition("@")
    if not at or len(local) > MAX_LOCAL_PART:
        return None
    host = host.rstrip(".")
    host_prefix = f"{label.lower()}."
    if not host.startswith(host_prefix) or len(host) == len(host_prefix):
        return None
    domain = host[len(host_prefix) :]
    if not local.startswith(PREFIX):
        return None
    token, dot, mac = local[len(PREFIX) :].partition(".")
    if not dot or len(token) != ID_CHARS or len(mac) != MAC_CHARS:
        return None
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except (binascii.Error, ValueError):
        return None
    # 26 base32 chars hold 130 bits for 128: reject the non-canonical spellings so that one
    # delivery has exactly one valid address.
    if len(raw) != 16 or _b32(raw) != token:
        return None
    delivery = uuid.UUID(bytes=raw)
    expected = _mac(key, delivery, domain)
    if not hmac.compare_digest(expected.encode("ascii"), mac.encode("ascii")):
        return None
    return str(delivery)
