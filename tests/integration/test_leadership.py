"""One scheduler leads across processes (storage/leadership.py), on a real database.

Each Leadership holds its own connection, as two processes would; the holder's
"death" is its server session being terminated (what the server does when a process
dies), after which the standby takes over on its next try.
"""

from __future__ import annotations

import time

from sqlalchemy import text

from postroom.services import Services
from postroom.storage.leadership import Leadership


def test_one_leads_and_the_other_takes_over(services: Services) -> None:
    engine = services.db.engine
    first, second = Leadership(engine, "scheduler"), Leadership(engine, "scheduler")
    try:
        assert first.try_lead() is True
        if engine.dialect.name != "postgresql":
            # One process per SQLite database (storage/processlock.py): it always leads.
            assert second.try_lead() is True
            return
        assert second.try_lead() is False
        assert first.try_lead() is True  # still ours on the next round
        assert second.try_lead() is False

        # The holder's session ends as when its process is killed: the lock is free.
        assert first._conn is not None
        pid = first._conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.commit()
        # The server ends the session asynchronously; the standby retries each round.
        deadline = time.monotonic() + 10
        while not second.try_lead() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.leading
        assert first.try_lead() is False  # it noticed the loss and stands by

        second.release()
        assert first.try_lead() is True
    finally:
        first.release()
        second.release()


def test_other_names_and_schemas_do_not_contend(services: Services) -> None:
    engine = services.db.engine
    scheduler, other = Leadership(engine, "scheduler"), Leadership(engine, "something-else")
    try:
        assert scheduler.try_lead() is True
        assert other.try_lead() is True
    finally:
        scheduler.release()
        other.release()
