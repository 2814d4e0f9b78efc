"""Conversation threads of inbound inboxes: grouping received mail and the answers sent.

A received message is placed in a thread in the transaction that stores it
(:func:`assign`), by the rule of :mod:`postroom.domain.threading` (Message-ID,
In-Reply-To and References; a normalized subject only when both reply headers are
missing). An answer sent from the inbox (:mod:`postroom.services.inbound_replies`) joins
the thread of the message it answers and registers its own Message-ID
(:func:`add_sent`), so the correspondent's next reply comes back into the same thread.

Reading: threads are listed most recently active first, 50 a page, with a ``last_id``
cursor (the last thread of the previous page); a thread shows its received messages and
its sent answers merged, oldest first. Deleting a thread deletes its messages and answers'
records (not the sent mail). A thread whose last message was deleted or trimmed goes too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain import inboundmail, threading
from postroom.errors import NotFound, ValidationFailed
from postroom.services import Services
from postroom.storage.repos import inbound_mail as mail_repo
from postroom.storage.repos import inbound_threads as repo
from postroom.storage.repos import messages as message_repo

PAGE_SIZE = 50


def _keys(summary: dict[str, Any]) -> tuple[list[str], list[str]]:
    return threading.thread_keys(
        summary.get("message_id"), summary.get("in_reply_to"), summary.get("references") or []
    )


def assign(
    conn: Connection,
    inbox: dict[str, Any],
    message_id: int,
    summary: dict[str, Any],
    now: datetime,
) -> int:
    """Put received message ``message_id`` of ``inbox`` in its thread; the thread's id."""
    inbox_id = int(inbox["id"])
    own, answered = _keys(summary)
    keys = own + answered
    found = repo.threads_by_keys(conn, inbox_id, keys)
    thread_id: int | None = found[0] if found else None
    subject = summary.get("subject")
    if thread_id is None and not answered and threading.is_answer_subject(subject):
        since = now - threading.SUBJECT_WINDOW
        thread_id = repo.recent_by_subject(conn, inbox_id, threading.subject_key(subject), since)
    if thread_id is None:
        thread_id = repo.insert_thread(
            conn,
            {
                "account_id": inbox["account_id"],
                "inbox_id": inbox_id,
                "subject": subject,
                "subject_key": threading.subject_key(subject),
                "created_at": now,
                "last_activity_at": now,
            },
        )
    else:
        repo.touch_thread(conn, thread_id, now)
        # A reply that came first named the thread "Re: …"; its root, arriving, renames it.
        current = repo.thread(conn, inbox_id, thread_id)
        renames = current is not None and threading.is_answer_subject(current["subject"])
        if renames and subject and not threading.is_answer_subject(subject):
            repo.set_subject(conn, thread_id, subject)
    known = repo.known_keys(conn, inbox_id, keys)
    repo.insert_keys(conn, inbox_id, thread_id, [k for k in keys if k not in known])
    repo.set_message_thread(conn, message_id, thread_id)
    return thread_id


def add_sent(conn: Connection, row: dict[str, Any], keys: list[str]) -> int:
    """Record an answer sent from an inbox (``row``: inbound_sent) in its thread, with the
    Message-IDs that tie later replies to it."""
    sent_id = repo.insert_sent(conn, row)
    thread_id = row.get("thread_id")
    if thread_id is not None and repo.thread(conn, int(row["inbox_id"]), int(thread_id)):
        repo.touch_thread(conn, int(thread_id), row["created_at"])
        known = repo.known_keys(conn, int(row["inbox_id"]), keys)
        repo.insert_keys(
            conn, int(row["inbox_id"]), int(thread_id), [k for k in keys if k not in known]
        )
    return sent_id


def require_inbox(conn: Connection, account_id: int, inbox_id: int) -> dict[str, Any]:
    """The account's inbound inbox ``inbox_id`` (404 for another account's or none)."""
    found = mail_repo.inbox(conn, account_id, inbox_id)
    if found is None:
        raise NotFound("inbound inbox")
    return found


def _thread(conn: Connection, account_id: int, inbox_id: int, thread_id: int) -> dict[str, Any]:
    require_inbox(conn, account_id, inbox_id)
    found = repo.thread(conn, inbox_id, thread_id)
    if found is None:
        raise NotFound("inbound thread")
    return found


@dataclass(slots=True)
class Thread:
    """A thread row with its received message rows and sent answer rows, oldest first."""

    row: dict[str, Any]
    received: list[dict[str, Any]]
    sent: list[dict[str, Any]]


@dataclass(slots=True)
class ThreadPage:
    threads: list[Thread]
    total: int
    last_id: int | None


def _group(
    rows: list[dict[str, Any]], received: list[dict[str, Any]], sent: list[dict[str, Any]]
) -> list[Thread]:
    by_id = {int(r["id"]): Thread(r, [], []) for r in rows}
    for message in received:
        by_id[int(message["thread_id"])].received.append(message)
    for answer in sent:
        by_id[int(answer["thread_id"])].sent.append(answer)
    return list(by_id.values())


async def list_threads(
    services: Services, account_id: int, inbox_id: int, last_id: int | None, search: str | None
) -> ThreadPage:
    def run(conn: Connection) -> ThreadPage:
        require_inbox(conn, account_id, inbox_id)
        after = None
        if last_id is not None:
            after = repo.thread(conn, inbox_id, last_id)
            if after is None:
                raise ValidationFailed(["last_id must be a thread of this inbox"])
        rows, total = repo.thread_page(conn, inbox_id, after, search, PAGE_SIZE + 1)
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        ids = [int(r["id"]) for r in rows]
        threads = _group(rows, repo.received_in(conn, ids), repo.sent_in(conn, ids))
        return ThreadPage(threads, total, ids[-1] if more else None)

    return await services.db.read(run)


@dataclass(slots=True)
class ThreadDetail:
    thread: Thread
    mails: dict[int, inboundmail.ParsedMail]  # received message id → its parsed mail
    deliveries: dict[str, dict[str, Any]]  # sent message id → its delivery row


async def get_thread(
    services: Services, account_id: int, inbox_id: int, thread_id: int
) -> ThreadDetail:
    def run(conn: Connection) -> tuple[Thread, dict[int, bytes], dict[str, dict[str, Any]]]:
        row = _thread(conn, account_id, inbox_id, thread_id)
        [thread] = _group(
            [row], repo.received_in(conn, [thread_id]), repo.sent_in(conn, [thread_id])
        )
        ids = [str(s["message_id"]) for s in thread.sent]
        deliveries = {str(d["id"]): d for d in message_repo.deliveries_by_ids(conn, ids)}
        return thread, repo.raw_in(conn, thread_id), deliveries

    thread, raws, deliveries = await services.db.read(run)

    def parse_all() -> dict[int, inboundmail.ParsedMail]:
        return {i: inboundmail.parse(raw) for i, raw in raws.items()}

    mails = await asyncio.to_thread(parse_all)
    return ThreadDetail(thread, mails, deliveries)


async def delete_thread(services: Services, account_id: int, inbox_id: int, thread_id: int) -> None:
    def run(conn: Connection) -> None:
        _thread(conn, account_id, inbox_id, thread_id)
        repo.delete_thread(conn, thread_id)

    await services.db.write(run)
