"""Sandbox inboxes' SMTP passwords at rest: sealed, never in plaintext in the database.

The contract shows an inbox's ``password`` to its administrators (spec §4.9), and the
submission listener must compare it in constant time, so the password has to be
recoverable: it is sealed with the installation's key (:mod:`postroom.storage.secrets`,
the key that seals DKIM private keys) into ``inboxes.password_sealed``. A copy of the
database alone reveals no password.

Inboxes created before migration 0009 kept their password in plain text in
``inboxes.password``; a migration cannot seal them (it may run where the key is not
available), so :func:`seal_plaintext_passwords` does it at the next start, and until
then :func:`smtp_password` reads either form.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection

from postroom.services import Services
from postroom.storage.repos import sandbox as repo
from postroom.storage.secrets import Sealer, SecretKeyMissing

log = logging.getLogger("postroom.sandbox")


def new_password(services: Services) -> dict[str, Any]:
    """Column values for fresh SMTP credentials' password (sealed, no plaintext).

    Sealing is random (Fernet's IV), so callers make these values before a write
    function is submitted, as they do every random value.
    """
    secret = services.ids.hex(7)
    return {"password": None, "password_sealed": services.get_sealer().seal(secret.encode())}


def smtp_password(sealer: Sealer, row: Mapping[str, Any]) -> str | None:
    """An inbox row's SMTP password in clear (sealed, or plaintext not yet sealed).

    None when this installation's key does not open it (a process started with another
    data directory or ``security.secret_key``): logged, and no login matches it.
    """
    sealed = row["password_sealed"]
    if sealed is None:
        return str(row["password"])
    try:
        return sealer.open(bytes(sealed)).decode("utf-8")
    except SecretKeyMissing as exc:
        log.error("inbox %s: SMTP password unreadable: %s", row.get("id"), exc)
        return None


def seal_plaintext_passwords(services: Services) -> int:
    """Seal every password still stored in plain text; returns how many were sealed."""
    sealer = services.get_sealer()

    def run(conn: Connection) -> int:
        plain = repo.plaintext_passwords(conn)
        for inbox_id, password in plain:
            repo.seal_password(conn, inbox_id, sealer.seal(password.encode("utf-8")))
        return len(plain)

    count = services.db.write_sync(run)
    if count:
        log.warning("sealed the SMTP passwords of %d sandbox inbox(es) stored in plain text", count)
    return count
