"""DKIM signing of outgoing mail with the sender domain's active keys.

Shared by sandbox capture (the inbox shows what recipients would receive) and the MX /
relay delivery engine (what recipients do receive).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain import dkim
from postroom.domain.dkim import DkimKey
from postroom.services import Services, domains


class Signer:
    """DKIM-signs mail as it leaves for an MX: with the active keys of the sender's
    verified domain (unsigned when the domain is not verified). Keys are looked up once
    per sender domain and round."""

    def __init__(self, services: Services, conn: Connection, timestamp: int) -> None:
        self._services, self._conn, self._timestamp = services, conn, timestamp
        self._keys: dict[tuple[int, str], list[DkimKey]] = {}

    def sign(self, message: dict[str, Any], raw: bytes) -> bytes:
        account, domain = int(message["account_id"]), message["sender"].rpartition("@")[2]
        if (account, domain) not in self._keys:
            self._keys[account, domain] = domains.signing_keys(
                self._services, self._conn, account, domain.lower()
            )
        keys = self._keys[account, domain]
        return dkim.sign(raw, keys, timestamp=self._timestamp) if keys else raw
