"""Inbound email: folders of inboxes, each with its own address, and the mail they receive.

An inbox's address is ``<local part>@<inbound domain>`` (``inbound.domain``, by default
``inbound.<domains.mail_host>``): the local part is made from the inbox's name and eight
random hex digits, unique in the installation. Mail reaches it on the inbound listener
(:mod:`postroom.inbound.listener`) once the inbound domain's MX points at
``domains.mail_host`` (:func:`mx_instructions`).

Receiving (:func:`receive`), in order: the message is parsed
(:mod:`postroom.domain.inboundmail`), authenticated (SPF, DKIM, DMARC:
:mod:`postroom.services.mailauth`) and scored; a DMARC failure of a domain asking
``p=reject`` (when ``inbound.enforce_dmarc_reject``) and a score at or above
``inbound.spam_threshold`` are refused (550 5.7.1) and nothing is stored. Otherwise, in one
transaction per message: the message is stored in each inbox it was addressed to, each
inbox keeps its newest ``inbound.max_messages_per_inbox``, the message joins its thread
(:mod:`postroom.services.inbound_threads`), and an ``inbound_received``
event (details ``inbox_id``, ``inbound_message_id``) is recorded for each, which
``inbound_receiving`` webhooks deliver. The size limit (``inbound.max_message_bytes``) is
the listener's.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain import inboundmail
from postroom.domain.events import EventKind
from postroom.errors import Conflict, NotFound
from postroom.events.recorder import event_row
from postroom.services import Services, inbound_threads, mailauth
from postroom.storage.repos import inbound_mail as repo
from postroom.storage.repos import inbound_threads as thread_repo
from postroom.storage.repos import messages as message_repo

NAME_MAX = 100
# Inboxes answer a ``domain_id`` (the Python SDK requires it); the installation has one
# inbound domain, which is this one.
INBOUND_DOMAIN_ID = 1
PAGE_SIZE = 50
_SLUG = re.compile(r"[^a-z0-9]+")


class Refused(Exception):
    """The message is refused for good; ``reply`` is the SMTP reply."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def inbound_domain(services: Services) -> str:
    return services.settings.inbound.inbound_domain(services.settings.domains.mail_host)


def address_of(services: Services, inbox: Mapping[str, Any]) -> str:
    return f"{inbox['local_part']}@{inbound_domain(services)}"


def mx_instructions(services: Services) -> dict[str, Any]:
    """The DNS record that brings the inboxes' mail here."""
    domain, host = inbound_domain(services), services.settings.domains.mail_host
    return {
        "domain": domain,
        "type": "MX",
        "priority": 10,
        "value": host,
        "text": f"{domain}. IN MX 10 {host}.",
    }


def _name(body: Mapping[str, Any]) -> str:
    value = body.get("name")
    if not isinstance(value, str) or not value.strip():
        raise Conflict({"name": ["can't be blank"]})
    if len(value.strip()) > NAME_MAX:
        raise Conflict({"name": [f"is too long (maximum is {NAME_MAX} characters)"]})
    return value.strip()


def _section(body: Mapping[str, Any], wrapper: str) -> Mapping[str, Any]:
    inner = body.get(wrapper)
    return inner if isinstance(inner, dict) else body


# --- folders ------------------------------------------------------------------------------


def _folder(conn: Connection, account_id: int, folder_id: int) -> dict[str, Any]:
    found = repo.folder(conn, account_id, folder_id)
    if found is None:
        raise NotFound("inbound folder")
    return found


def _unique_folder(conn: Connection, account_id: int, name: str, skip: int | None) -> None:
    for other in repo.folders_of(conn, account_id):
        if other["id"] != skip and str(other["name"]).lower() == name.lower():
            raise Conflict({"name": ["has already been taken"]})


async def list_folders(services: Services, account_id: int) -> list[dict[str, Any]]:
    return await services.db.read(lambda conn: repo.folders_of(conn, account_id))


async def get_folder(services: Services, account_id: int, folder_id: int) -> dict[str, Any]:
    return await services.db.read(lambda conn: _folder(conn, account_id, folder_id))


async def create_folder(
    services: Services, account_id: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    name = _name(_section(body, "folder"))
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, Any]:
        _unique_folder(conn, account_id, name, None)
        row = {"account_id": account_id, "name": name, "created_at": now}
        return _folder(conn, account_id, repo.insert_folder(conn, row))

    return await services.db.write(run)


async def update_folder(
    services: Services, account_id: int, folder_id: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    name = _name(_section(body, "folder"))

    def run(conn: Connection) -> dict[str, Any]:
        _folder(conn, account_id, folder_id)
        _unique_folder(conn, account_id, name, folder_id)
        repo.rename_folder(conn, folder_id, name)
        return _folder(conn, account_id, folder_id)

    return await services.db.write(run)


async def delete_folder(services: Services, account_id: int, folder_id: int) -> None:
    def run(conn: Connection) -> None:
        _folder(conn, account_id, folder_id)
        repo.delete_folder(conn, folder_id)

    await services.db.write(run)


# --- inboxes ------------------------------------------------------------------------------


def _inbox(
    conn: Connection, account_id: int, inbox_id: int, folder_id: int | None = None
) -> dict[str, Any]:
    found = repo.inbox(conn, account_id, inbox_id)
    if found is None or (folder_id is not None and found["folder_id"] != folder_id):
        raise NotFound("inbound inbox")
    return found


async def list_inboxes(services: Services, account_id: int, folder_id: int) -> list[dict[str, Any]]:
    def run(conn: Connection) -> list[dict[str, Any]]:
        _folder(conn, account_id, folder_id)
        return repo.inboxes_of(conn, folder_id)

    return await services.db.read(run)


async def get_inbox(
    services: Services, account_id: int, folder_id: int, inbox_id: int
) -> dict[str, Any]:
    def run(conn: Connection) -> dict[str, Any]:
        _folder(conn, account_id, folder_id)
        return _inbox(conn, account_id, inbox_id, folder_id)

    return await services.db.read(run)


async def create_inbox(
    services: Services, account_id: int, folder_id: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    name = _name(_section(body, "inbox"))
    slug = _SLUG.sub("-", name.lower()).strip("-")[:40] or "inbox"
    local_part = f"{slug}-{services.ids.hex(4)}"
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, Any]:
        _folder(conn, account_id, folder_id)
        row = {
            "account_id": account_id,
            "folder_id": folder_id,
            "name": name,
            "local_part": local_part,
            "created_at": now,
        }
        return _inbox(conn, account_id, repo.insert_inbox(conn, row))

    return await services.db.write(run)


async def update_inbox(
    services: Services, account_id: int, folder_id: int, inbox_id: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    name = _name(_section(body, "inbox"))

    def run(conn: Connection) -> dict[str, Any]:
        _folder(conn, account_id, folder_id)
        _inbox(conn, account_id, inbox_id, folder_id)
        repo.rename_inbox(conn, inbox_id, name)
        return _inbox(conn, account_id, inbox_id)

    return await services.db.write(run)


async def delete_inbox(services: Services, account_id: int, folder_id: int, inbox_id: int) -> None:
    def run(conn: Connection) -> None:
        _folder(conn, account_id, folder_id)
        _inbox(conn, account_id, inbox_id, folder_id)
        repo.delete_inbox(conn, inbox_id)

    await services.db.write(run)


# --- messages -----------------------------------------------------------------------------


async def list_messages(
    services: Services, account_id: int, inbox_id: int, before: int | None
) -> tuple[list[dict[str, Any]], int, int | None]:
    """One page, newest first: the rows, the inbox's total, and the next page's cursor."""

    def run(conn: Connection) -> tuple[list[dict[str, Any]], int, int | None]:
        _inbox(conn, account_id, inbox_id)
        rows, total = repo.page(conn, inbox_id, before, PAGE_SIZE + 1)
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        return rows, total, int(rows[-1]["id"]) if more else None

    return await services.db.read(run)


@dataclass(frozen=True, slots=True)
class Shown:
    row: dict[str, Any]
    mail: inboundmail.ParsedMail


async def get_message(services: Services, account_id: int, inbox_id: int, message_id: int) -> Shown:
    def run(conn: Connection) -> dict[str, Any]:
        _inbox(conn, account_id, inbox_id)
        found = repo.message(conn, inbox_id, message_id)
        if found is None:
            raise NotFound("inbound message")
        return found

    row = await services.db.read(run)
    mail = await asyncio.to_thread(inboundmail.parse, bytes(row["raw"]))
    return Shown(row, mail)


async def delete_message(
    services: Services, account_id: int, inbox_id: int, message_id: int
) -> None:
    def run(conn: Connection) -> None:
        _inbox(conn, account_id, inbox_id)
        if repo.message(conn, inbox_id, message_id) is None:
            raise NotFound("inbound message")
        repo.delete_message(conn, message_id)
        thread_repo.delete_empty_threads(conn, inbox_id)

    await services.db.write(run)


# --- receiving ----------------------------------------------------------------------------


async def inbox_for_address(services: Services, address: str) -> dict[str, Any] | None:
    """The inbox ``address`` names, if any (``RCPT TO`` of the inbound listener)."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if not local or domain.lower().rstrip(".") != inbound_domain(services):
        return None
    return await services.db.read(lambda conn: repo.inbox_by_local_part(conn, local.lower()))


@dataclass(frozen=True, slots=True)
class Received:
    message_ids: list[int]
    spam_score: float
    auth: dict[str, Any]
    # (inbox row, message id) of each stored copy, and the parsed summary they share:
    # what the inbox's forward rules look at (postroom.services.inbound_rules).
    stored: list[tuple[dict[str, Any], int]]
    summary: dict[str, Any]


async def receive(
    services: Services,
    inboxes: list[dict[str, Any]],
    raw: bytes,
    *,
    client_ip: str,
    helo: str,
    mail_from: str,
) -> Received:
    """Check, score and store one message for ``inboxes`` (see the module doc)."""
    cfg = services.settings.inbound
    mail = await asyncio.to_thread(inboundmail.parse, raw)
    auth = await mailauth.authenticate(services, raw, client_ip, helo, mail_from, mail.from_domain)
    dmarc = auth["dmarc"]
    if cfg.enforce_dmarc_reject and dmarc["result"] == "fail" and dmarc["policy"] == "reject":
        raise Refused(f"550 5.7.1 Message refused: DMARC policy of {dmarc['domain']} (reject)")
    rules = inboundmail.spam_rules(mail, auth)
    score = inboundmail.spam_score(rules)
    if score >= cfg.spam_threshold:
        raise Refused(f"550 5.7.1 Message refused as spam (score {score}: {', '.join(rules)})")
    auth = {**auth, "spam_rules": rules}
    summary = mail.summary()
    now = services.clock.now()
    unique = list({int(i["id"]): i for i in inboxes}.values())

    def run(conn: Connection) -> list[tuple[dict[str, Any], int]]:
        made: list[tuple[dict[str, Any], int]] = []
        event_rows = []
        for inbox in unique:
            found = repo.inbox(conn, int(inbox["account_id"]), int(inbox["id"]))
            if found is None:  # removed since RCPT TO
                continue
            message_id = repo.insert_message(
                conn,
                {
                    "account_id": found["account_id"],
                    "inbox_id": found["id"],
                    "mail_from": mail_from[:320],
                    "summary": summary,
                    "auth": auth,
                    "spam_score": score,
                    "size": len(raw),
                    "raw": raw,
                    "received_at": now,
                },
            )
            inbound_threads.assign(conn, found, message_id, summary, now)
            if repo.trim(conn, int(found["id"]), cfg.max_messages_per_inbox):
                thread_repo.delete_empty_threads(conn, int(found["id"]))
            made.append((found, message_id))
            event_rows.append(
                event_row(
                    services.ids,
                    int(found["account_id"]),
                    EventKind.INBOUND_RECEIVED,
                    None,
                    None,
                    (mail.sender or mail_from or "")[:320] or None,
                    {"inbox_id": int(found["id"]), "inbound_message_id": str(message_id)},
                    now,
                )
            )
        message_repo.insert_events(conn, event_rows)
        return made

    stored = await services.db.write(run)
    return Received([m for _, m in stored], score, auth, stored, summary)
