"""Sandbox inboxes' SMTP credentials: which inbox a user name and password open.

The Testing API shows each inbox's ``username`` and ``password`` (spec §4.9); a client
that logs in with them over SMTP submission has its mail captured into that inbox, and
only that inbox (the credentials name one inbox of one account). The stored password is
sealed (:mod:`postroom.sandbox.credentials`); it is unsealed and compared in constant
time, and an unknown user name costs the same unsealing and comparison.
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass

from postroom.sandbox.credentials import smtp_password
from postroom.services import Services
from postroom.storage.repos import sandbox as repo
from postroom.storage.secrets import Sealer

# Compared against when the user name is unknown, so both failures take the same work.
_NO_PASSWORD = b"\x00" * 14


@dataclass(frozen=True, slots=True)
class InboxLogin:
    """The inbox a set of SMTP credentials opens."""

    account_id: int
    inbox_id: int


@functools.cache
def _decoy(sealer: Sealer) -> dict[str, bytes | None]:
    # A sealed row for unknown user names: unsealing it costs what a real one does.
    return {"password_sealed": sealer.seal(_NO_PASSWORD), "password": None}


async def inbox_login(services: Services, username: str, password: bytes) -> InboxLogin | None:
    """The inbox whose SMTP credentials these are, or None."""
    if not username or len(username) > 64:
        return None
    row = await services.db.read(lambda conn: repo.inbox_by_username(conn, username))
    sealer = services.get_sealer()
    expected = smtp_password(sealer, row if row else _decoy(sealer))
    matches = hmac.compare_digest((expected or "").encode("utf-8"), password)
    if row is None or expected is None or not matches:
        return None
    return InboxLogin(int(row["account_id"]), int(row["id"]))
