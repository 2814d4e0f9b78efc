"""Where an account's mail goes: the delivery mode per account and per stream.

``sandbox`` captures into test inboxes, ``mx`` delivers to recipients' MX hosts,
``relay`` hands mail to the smarthost (DESIGN.md). The mode of a message is decided, in
this order, by its account's own mode (``postroom account set-mode``), its stream's
(``delivery.stream_modes``), then ``delivery.mode``. So one installation can keep a
staging account in the sandbox while production accounts deliver, or deliver the
transactional stream while bulk is still being tested.

Acceptance and delivery both ask: acceptance because only ``sandbox`` accepts any From
(nothing leaves the machine), delivery to pick the engine. An account's mode is cached
for a few seconds, like its verified domains, so a change applies within that time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.engine import Connection

from postroom.config import DeliveryMode, Settings
from postroom.domain.audit import Actor
from postroom.services import Services
from postroom.storage.repos import accounts as repo
from postroom.storage.repos import audit


def resolve(settings: Settings, account_mode: str | None, stream: str) -> DeliveryMode:
    """The mode of mail of an account whose own mode is ``account_mode`` on ``stream``."""
    if account_mode:
        return DeliveryMode(account_mode)
    stream_mode = settings.delivery.stream_modes.get(stream)
    return stream_mode if stream_mode is not None else settings.delivery.mode


async def for_account(services: Services, account_id: int, stream: str) -> DeliveryMode:
    """The mode of ``account_id``'s mail on ``stream`` (the account's own mode cached)."""
    cached = services.account_modes.get(account_id)
    if cached is None:
        modes = await services.db.read(lambda conn: repo.delivery_modes(conn, [account_id]))
        cached = (modes.get(account_id) or "",)
        services.account_modes.put(account_id, cached)
    return resolve(services.settings, cached[0] or None, stream)


def of_deliveries(
    settings: Settings, conn: Connection, rows: Iterable[Mapping[str, Any]]
) -> dict[DeliveryMode, list[dict[str, Any]]]:
    """``rows`` (leased deliveries) split by the mode each must be delivered in."""
    leased = [dict(r) for r in rows]
    own = repo.delivery_modes(conn, [int(r["account_id"]) for r in leased])
    split: dict[DeliveryMode, list[dict[str, Any]]] = {}
    for row in leased:
        mode = resolve(settings, own.get(int(row["account_id"])), str(row["stream"]))
        split.setdefault(mode, []).append(row)
    return split


def set_for_account(services: Services, account_id: int, mode: DeliveryMode | None) -> None:
    """Give ``account_id`` its own mode (None: follow its stream's); ValueError if unknown."""
    value = mode.value if mode is not None else None

    def run(conn: Connection) -> bool:
        before = repo.get_account(conn, account_id)
        if not repo.set_delivery_mode(conn, account_id, value):
            return False
        audit.append(
            conn,
            account_id=account_id,
            actor=Actor.cli(),
            action="account.delivery_mode_changed",
            target_type="account",
            target_id=account_id,
            before={"delivery_mode": before["delivery_mode"] if before else None},
            after={"delivery_mode": value},
            now=services.clock.now(),
        )
        return True

    if not services.db.write_sync(run):
        raise ValueError(f"no account with id {account_id}")
    services.forget("account_modes", account_id)
