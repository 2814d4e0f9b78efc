"""Substring search on its index (storage/search.py), on both backends: the email logs'
and the sandbox's "contains" find exactly what the plain LIKE finds, whatever the term
(short, common, quoted, with LIKE's wildcards, several values, another case)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.engine import Connection

from postroom.domain.logfilters import Filter, LogQuery
from postroom.services import Services
from postroom.services.accounts import Bootstrap
from postroom.storage import search
from postroom.storage.repos import logs as log_repo
from postroom.storage.repos import sandbox as sandbox_repo
from postroom.storage.tables import deliveries, messages, sandbox_messages

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RECIPIENTS = [
    "Alice.Smith@Example.org",
    "bob@example.net",
    'odd"quote@example.com',
    "per%cent_under@example.com",
    "Ünïcode@exämple.de",
    "zed@other.test",
]
TERMS = [
    "smith",
    "SMITH@EXA",
    "example",
    "ex",  # shorter than a trigram
    'd"q',
    "%cent_",
    "r%c",
    "ämple",
    "nothing-like-it",
    "@",
]


def _seed(conn: Connection, account_id: int, inbox_id: int) -> None:
    for n, recipient in enumerate(RECIPIENTS):
        at = T0 + timedelta(minutes=n)
        conn.execute(
            messages.insert().values(
                id=f"m{n}",
                account_id=account_id,
                stream="transactional",
                sender=f"Sender{n}@Shop.example",
                subject=f"Order {n} for {recipient}",
                rfc_message_id=f"<{n}@x>",
                size=10,
                created_at=at,
            )
        )
        conn.execute(
            deliveries.insert().values(
                id=f"d{n}",
                message_id=f"m{n}",
                account_id=account_id,
                stream="transactional",
                recipient=recipient,
                recipient_domain=recipient.rpartition("@")[2],
                recipient_kind="to",
                position=0,
                state="delivered",
                priority=0,
                next_attempt_at=at,
                created_at=at,
                updated_at=at,
            )
        )
        conn.execute(
            sandbox_messages.insert().values(
                inbox_id=inbox_id,
                account_id=account_id,
                subject=f"Captured {n}",
                from_email="app@example.com",
                from_name="App",
                to_email=recipient,
                to_name="",
                mail_from="app@example.com",
                raw=b"x",
                email_size=1,
                text_body_size=0,
                html_body_size=0,
                is_read=False,
                created_at=at,
                updated_at=at,
            )
        )


def _logs(
    conn: Connection, account_id: int, field: str, operator: str, values: list[str]
) -> set[str]:
    query = LogQuery(filters=(Filter(field, operator, tuple(values)),))
    where = log_repo.conditions(conn, query, {})
    rows = log_repo.page(conn, account_id, where, None, 100)
    assert log_repo.count(conn, account_id, where, query) == len(rows)
    return {str(r["id"]) for r in rows}


def _plain(conn: Connection, column: Any, operator: str, values: list[str]) -> set[str]:
    """The same filter as a bare LIKE over the table, without any index's help."""
    lowered = func.lower(column)
    matches: list[ColumnElement[bool]] = [
        lowered == v.lower()
        if operator == "ci_equal"
        else lowered.contains(v.lower(), autoescape=True)
        for v in values
    ]
    query = (
        select(deliveries.c.id)
        .select_from(deliveries.join(messages, messages.c.id == deliveries.c.message_id))
        .where(or_(false(), *matches))
    )
    return {str(r[0]) for r in conn.execute(query)}


def _captured(conn: Connection, inbox_id: int, term: str) -> list[int]:
    rows = sandbox_repo.list_messages(
        conn, inbox_id, search=term, before_id=None, offset=0, limit=100
    )
    return [int(r["id"]) for r in rows]


def _captured_plain(conn: Connection, inbox_id: int, term: str) -> list[int]:
    fields = ("subject", "from_email", "from_name", "to_email", "to_name")
    query = (
        select(sandbox_messages.c.id)
        .where(
            sandbox_messages.c.inbox_id == inbox_id,
            or_(*(sandbox_messages.c[f].icontains(term, autoescape=True) for f in fields)),
        )
        .order_by(sandbox_messages.c.id.desc())
    )
    return [int(r[0]) for r in conn.execute(query)]


@pytest.mark.parametrize("common", [search.COMMON, 1])
def test_searches_find_what_like_finds(
    services: Services, boot: Bootstrap, monkeypatch: pytest.MonkeyPatch, common: int
) -> None:
    """``common``: the real threshold, and 1 (every term "common": the fallback path)."""
    monkeypatch.setattr(search, "COMMON", common)
    services.db.write_sync(lambda conn: _seed(conn, boot.account_id, boot.inbox_id))

    def check(conn: Connection) -> None:
        seen_any = False
        for field, column in (
            ("to", deliveries.c.recipient),
            ("from", messages.c.sender),
            ("subject", messages.c.subject),
        ):
            for term in TERMS:
                found = _logs(conn, boot.account_id, field, "ci_contain", [term])
                assert found == _plain(conn, column, "ci_contain", [term]), (field, term)
                seen_any = seen_any or bool(found)
            pair = ["smith", "zed@"]
            assert _logs(conn, boot.account_id, field, "ci_contain", pair) == _plain(
                conn, column, "ci_contain", pair
            )
        exact = ["BOB@example.net", "nobody@example.net"]
        assert _logs(conn, boot.account_id, "to", "ci_equal", exact) == {"d1"}
        assert seen_any
        for term in TERMS:
            expected = _captured_plain(conn, boot.inbox_id, term)
            assert _captured(conn, boot.inbox_id, term) == expected, term

    services.db.read_sync(check)


def test_sqlite_narrows_only_where_it_helps(services: Services, boot: Bootstrap) -> None:
    services.db.write_sync(lambda conn: _seed(conn, boot.account_id, boot.inbox_id))

    def check(conn: Connection) -> None:
        narrowed = search.narrowing(conn, "deliveries", ["recipient"], ["smith"])
        if conn.dialect.name != "sqlite":
            assert narrowed is None  # the trigram index serves the LIKE itself
            return
        assert narrowed is not None
        assert search.narrowing(conn, "deliveries", ["recipient"], ["sm"]) is None
        assert search.narrowing(conn, "deliveries", ["recipient"], ["smith", "s"]) is None
        with pytest.raises(ValueError):
            search.narrowing(conn, "deliveries", ["state"], ["delivered"])

    services.db.read_sync(check)
