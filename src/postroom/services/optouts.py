"""Tracking opt-outs (spec §4.10): recipients a sending domain must not track.

Entries are per (sending domain, address). They come from the API (``POST
/api/tracking_opt_outs {"email", "domain_id"}``, what the SDKs' ``tracking_opt_outs_api``
calls) or from the recipient, through the "do not track" link of a domain with
``tracking_opt_out_enabled`` (:func:`from_delivery`). Each delivery round reads the list
(:mod:`postroom.mta.personalize`): a recipient on it gets neither the open pixel nor
rewritten links from that domain; unsubscribe links and headers stay.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain.addresses import is_valid_email
from postroom.errors import Conflict, NotFound, ValidationFailed
from postroom.services import Services, suppressions
from postroom.storage.repos import domains as domain_repo
from postroom.storage.repos import tracking as repo

PAGE_LIMIT = 1000


def _row(
    services: Services, account_id: int, domain_id: int, email: str, now: datetime
) -> dict[str, Any]:
    return {
        "id": services.ids.message_id(),
        "account_id": account_id,
        "domain_id": domain_id,
        "email": email,
        "created_at": now,
    }


async def create(
    services: Services, account_id: int, email: object, domain_id: object
) -> dict[str, Any]:
    """Add an address for one of the account's domains (or return the entry it has)."""
    problems: dict[str, list[str]] = {}
    address = suppressions.normal_email(email) if isinstance(email, str) else ""
    if not is_valid_email(address):
        problems["email"] = ["is invalid"]
    if not isinstance(domain_id, int) or isinstance(domain_id, bool):
        problems["domain_id"] = ["is invalid"]
    if problems:
        raise Conflict(problems)
    assert isinstance(domain_id, int)
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, Any]:
        if domain_repo.get_domain(conn, account_id, domain_id) is None:
            raise Conflict({"domain_id": ["is invalid"]})
        repo.add_opt_out(conn, _row(services, account_id, domain_id, address, now))
        found = repo.find_opt_out(conn, domain_id, address)
        assert found is not None
        shown = repo.opt_out(conn, account_id, str(found["id"]))
        assert shown is not None
        return shown

    return await services.db.write(run)


async def remove(services: Services, account_id: int, opt_out_id: str) -> dict[str, Any]:
    """Delete one of the account's entries; NotFound otherwise."""

    def run(conn: Connection) -> dict[str, Any]:
        found = repo.opt_out(conn, account_id, opt_out_id)
        if found is None:
            raise NotFound("tracking opt-out")
        repo.remove_opt_out(conn, opt_out_id)
        return found

    return await services.db.write(run)


async def list_page(
    services: Services,
    account_id: int,
    *,
    email: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    last_id: str | None = None,
) -> list[dict[str, Any]]:
    """Up to 1000 entries, oldest first, after the entry ``last_id``."""

    def run(conn: Connection) -> list[dict[str, Any]]:
        after = None
        if last_id is not None:
            cursor = repo.opt_out(conn, account_id, last_id)
            if cursor is None:
                raise ValidationFailed(["last_id is not a tracking opt-out of this account"])
            after = (cursor["created_at"], str(cursor["id"]))
        return repo.opt_out_page(
            conn,
            account_id,
            email=suppressions.normal_email(email) if email else None,
            start=start,
            end=end,
            after=after,
            limit=PAGE_LIMIT,
        )

    return await services.db.read(run)


async def from_delivery(services: Services, delivery: Mapping[str, Any]) -> None:
    """The recipient of ``delivery`` asked its sending domain not to track them."""
    now = services.clock.now()
    account_id = int(delivery["account_id"])
    domain = str(delivery["sender"]).rpartition("@")[2].lower()
    email = suppressions.normal_email(str(delivery["recipient"]))

    def run(conn: Connection) -> None:
        rows = repo.domains_named(conn, [(account_id, domain)])
        if rows:
            repo.add_opt_out(conn, _row(services, account_id, int(rows[0]["id"]), email, now))

    await services.db.write(run)
