"""The audit trail's pure parts: who acted, secret redaction, and the chain hash.

Each entry's hash is SHA-256 over the previous entry's hash and a canonical JSON of the
entry's own fields, so changing any stored field, or removing an entry, breaks the
chain from there on (storage/repos/audit.py keeps and checks it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
REDACTED = "[redacted]"

# Keys whose values never reach the audit log (matched case-insensitively, as substrings).
_SECRET_KEYS = (
    "password",
    "secret",
    "token",
    "private_key",
    "recovery",
    "totp",
    "hash",
    "api_key",
)

# The fields the hash covers, in this order.
HASHED_FIELDS = (
    "id",
    "account_id",
    "created_at",
    "actor_type",
    "actor_id",
    "actor_name",
    "source_ip",
    "action",
    "target_type",
    "target_id",
    "before",
    "after",
)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: a user, an API token, the CLI or Postroom itself."""

    kind: str  # "user", "token", "cli" or "system"
    id: str = ""
    name: str = ""
    source_ip: str = ""

    @classmethod
    def cli(cls) -> Actor:
        return cls("cli", "", "postroom command line")

    @classmethod
    def system(cls) -> Actor:
        return cls("system", "", "postroom")


def redact(value: Any) -> Any:
    """``value`` with every secret-looking key's value replaced (recursively)."""
    if isinstance(value, dict):
        return {
            key: REDACTED if _secret(str(key)) and item is not None else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, datetime):
        return stamp(value)
    if isinstance(value, bytes):
        return REDACTED
    return value


def _secret(key: str) -> bool:
    lowered = key.lower()
    # "token_id"/"token_name" identify a token; they are not its secret.
    if lowered.endswith(("_id", "_name", "_ids")) or lowered == "last_4_digits":
        return False
    return any(part in lowered for part in _SECRET_KEYS)


def stamp(value: datetime) -> str:
    """Times as hashed and shown: UTC, microseconds, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    """The chain hash of ``entry`` (its HASHED_FIELDS) after ``prev_hash``."""
    fields = {}
    for name in HASHED_FIELDS:
        value = entry.get(name)
        fields[name] = stamp(value) if isinstance(value, datetime) else value
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()
