"""storage/bulk.py: COPY on PostgreSQL stores exactly what executemany stores, atomically.

Each case inserts the same logical rows twice, once through ``conn.execute(table.insert(),
rows)`` and once through ``insert_rows``, and compares what the database hands back, on
both backends (SQLite always takes executemany; PostgreSQL takes COPY from 8 rows on).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from postroom.services import Services
from postroom.services.accounts import Bootstrap
from postroom.storage import bulk
from postroom.storage.tables import deliveries, events, message_bodies, messages

# Values COPY's text format must escape: tabs, newlines, backslashes, quotes, non-ASCII.
AWKWARD = 'tab\there\nnew line \\N back\\slash "quoted" naïve — 寿司 \r end'
WHEN = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def _event_rows(account_id: int, n: int, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "event_id": str(uuid.uuid4()),
            "account_id": account_id,
            "kind": "delivery",
            "message_id": f"{tag}-{i:04d}",
            "stream": None if i % 3 == 0 else "transactional",
            "recipient": f"{AWKWARD} {i}@example.org",
            "details": {"text": AWKWARD, "n": i, "list": [1, None, True], "nested": {"é": i}},
            "created_at": WHEN + timedelta(microseconds=i),
        }
        for i in range(n)
    ]


def _stored_events(services: Services, tag: str) -> list[tuple[Any, ...]]:
    query = (
        select(events.c.kind, events.c.stream, events.c.recipient, events.c.details,
               events.c.created_at)
        .where(events.c.message_id.like(f"{tag}-%"))
        .order_by(events.c.message_id)
    )  # fmt: skip
    return [tuple(r) for r in services.db.read_sync(lambda c: c.execute(query).all())]


@pytest.mark.parametrize("n", [3, 40])
def test_events_are_stored_alike(services: Services, boot: Bootstrap, n: int) -> None:
    plain, copied = (
        _event_rows(boot.account_id, n, "execm"),
        _event_rows(boot.account_id, n, "copyd"),
    )
    services.db.write_sync(lambda c: c.execute(events.insert(), plain))
    services.db.write_sync(lambda c: bulk.insert_rows(c, events, copied))
    stored = _stored_events(services, "copyd")
    assert stored == _stored_events(services, "execm")
    assert len(stored) == n
    assert stored[1][3]["text"] == AWKWARD and stored[1][4] == WHEN + timedelta(microseconds=1)


def test_messages_bodies_and_deliveries_alike(services: Services, boot: Bootstrap) -> None:
    """The accept path's tables, with a constant Python default (deliveries.attempts) left
    out of the rows and bodies holding every byte value."""
    raw = bytes(range(256)) + b"\r\n.\r\n" + AWKWARD.encode()

    def rows(tag: str) -> tuple[list[dict[str, Any]], ...]:
        ids = [f"{tag}-{i:04d}" for i in range(12)]
        msgs = [
            {"id": m, "account_id": boot.account_id, "stream": "transactional",
             "sender": "a@example.com", "subject": AWKWARD, "rfc_message_id": f"<{m}@x>",
             "size": len(raw), "created_at": WHEN}
            for m in ids
        ]  # fmt: skip
        bodies = [{"message_id": m, "raw": raw + m.encode()} for m in ids]
        dels = [
            {"id": f"{m}-d", "message_id": m, "account_id": boot.account_id, "position": 0,
             "recipient": "b@example.org", "recipient_domain": "example.org",
             "recipient_kind": "to", "state": "queued", "stream": "transactional",
             "priority": 0, "created_at": WHEN, "updated_at": WHEN, "next_attempt_at": WHEN}
            for m in ids
        ]  # fmt: skip
        return msgs, bodies, dels

    def store(insert: Any, tag: str) -> None:
        msgs, bodies, dels = rows(tag)
        services.db.write_sync(
            lambda c: [insert(c, t, r) for t, r in ((messages, msgs), (message_bodies, bodies),
                                                     (deliveries, dels))]
        )  # fmt: skip

    store(lambda c, t, r: c.execute(t.insert(), r), "execm")
    store(bulk.insert_rows, "copyd")

    def read(tag: str) -> list[tuple[Any, ...]]:
        query = (
            select(messages.c.id, messages.c.subject, messages.c.created_at, message_bodies.c.raw,
                   deliveries.c.state, deliveries.c.attempts, deliveries.c.lease_count,
                   deliveries.c.opens_count, deliveries.c.next_attempt_at)
            .join(message_bodies, message_bodies.c.message_id == messages.c.id)
            .join(deliveries, deliveries.c.message_id == messages.c.id)
            .where(messages.c.id.like(f"{tag}-%"))
            .order_by(messages.c.id)
        )  # fmt: skip
        got = services.db.read_sync(lambda c: c.execute(query).all())
        # each body ends in its message id: compare what comes before it
        return [(*r[1:3], bytes(r[3]).removesuffix(r[0].encode()), *r[4:]) for r in got]

    copied = read("copyd")
    assert copied == read("execm")
    assert len(copied) == 12 and copied[0][2] == raw and copied[0][4] == 0


def test_a_failing_copy_rolls_back_and_keeps_sqlalchemy_errors(
    services: Services, boot: Bootstrap
) -> None:
    """A duplicate inside the batch fails the whole transaction, as executemany would,
    with the IntegrityError callers catch; nothing of it is stored."""
    rows = _event_rows(boot.account_id, 20, "dup")
    rows[-1]["event_id"] = rows[0]["event_id"]

    def write(c: Any) -> None:
        c.execute(events.insert(), _event_rows(boot.account_id, 1, "before"))
        bulk.insert_rows(c, events, rows)

    with pytest.raises(sa_exc.IntegrityError):
        services.db.write_sync(write)
    count = select(func.count()).select_from(events).where(events.c.message_id.like("dup-%"))
    assert services.db.read_sync(lambda c: c.execute(count).scalar()) == 0
    before = select(func.count()).select_from(events).where(events.c.message_id.like("before-%"))
    assert services.db.read_sync(lambda c: c.execute(before).scalar()) == 0


def test_copy_is_chosen_only_when_it_inserts_the_same() -> None:
    pg, lite = postgresql.psycopg.dialect(), sqlite.dialect()
    rows = _event_rows(1, 10, "plan")
    assert bulk._copy_plan(pg, events, rows) == (list(rows[0]), {})
    assert bulk._copy_plan(lite, events, rows) is None
    assert bulk._copy_plan(pg, events, rows[: bulk.COPY_MIN_ROWS - 1]) is None
    mixed = [*rows[:-1], {k: v for k, v in rows[-1].items() if k != "stream"}]
    assert bulk._copy_plan(pg, events, mixed) is None
    assert bulk._copy_plan(pg, events, [{**r, "nope": 1} for r in rows]) is None
    dels = [{"id": str(i), "message_id": "m", "account_id": 1} for i in range(10)]
    _, constants = bulk._copy_plan(pg, deliveries, dels) or ([], {})
    assert constants == {"attempts": 0, "lease_count": 0}


def test_column_types_are_read_again_when_the_cache_lacks_one(
    services: Services, boot: Bootstrap
) -> None:
    """A cached type list that misses a column (a migration added it after the first
    COPY) is refreshed instead of failing the insert."""
    services.db.write_sync(
        lambda c: bulk.insert_rows(c, events, _event_rows(boot.account_id, 9, "first"))
    )
    for key in [k for k in bulk._type_oids if k[1] == "events"]:
        bulk._type_oids[key] = {"kind": bulk._type_oids[key]["kind"]}
    services.db.write_sync(
        lambda c: bulk.insert_rows(c, events, _event_rows(boot.account_id, 9, "again"))
    )
    assert len(_stored_events(services, "again")) == 9
