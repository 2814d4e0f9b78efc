"""Dashboard benchmark (F12): server time per page with a large database.

Seeds ``--messages`` (default 1,000,000) sent messages with their events (the generator
and seeding of bench/stats.py, folded into the daily rollups by the real consumer) and
``--captured`` (default 100,000) captured sandbox messages in one inbox, plus a signed-in
user. Then it requests every dashboard page in process through the ASGI app (FastAPI,
session lookup, CSRF token, service calls, Jinja2 rendering) ``--repeats`` times and
reports the median and p95 per page. In-process timing is the server's time: no network
or browser in it.

On PostgreSQL the seeded tables are then vacuumed and analyzed, as autovacuum would
have done in a running installation long before a million messages: without statistics
the planner guesses (the folding's updates leave a dead row per delivery) and the
numbers would measure the guesses.

``--seeded`` times an already seeded ``--database-url`` again (seeding is skipped; the
migrations run first, so a database seeded by an older version is migrated, and the
migration's time is reported): the same data before and after a schema change.

Usage (from the repository root)::

    .venv/bin/python bench/dashboard.py                              # SQLite, 1M + 100k
    .venv/bin/python bench/dashboard.py --messages 50000 --captured 5000   # smoke test
    .venv/bin/python bench/dashboard.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
    .venv/bin/python bench/dashboard.py --database-url …/bench --seeded  # the same data again
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import select, text
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))
from stats import fold, seed  # noqa: E402  (bench/stats.py: the same data set)

from postroom.api.app import create_app  # noqa: E402
from postroom.config import Settings  # noqa: E402
from postroom.dashboard import install  # noqa: E402
from postroom.domain.audit import Actor  # noqa: E402
from postroom.services import Services  # noqa: E402
from postroom.services import users as user_service  # noqa: E402
from postroom.services.accounts import bootstrap  # noqa: E402
from postroom.storage.db import Database  # noqa: E402
from postroom.storage.migrate import upgrade  # noqa: E402
from postroom.storage.tables import deliveries, inboxes, sandbox_messages  # noqa: E402

CHUNK = 10_000
PASSWORD = "benchmark password"
BUDGET_MS = 200.0


def captured_raw(n: int) -> bytes:
    mail = EmailMessage()
    mail["From"] = "App <app@example.com>"
    mail["To"] = f"user{n}@example.com"
    mail["Subject"] = f"Captured {n}"
    mail.set_content("Hello, this is the text part.\n" * 5)
    mail.add_alternative("<p>Hello, this is the <b>HTML</b> part.</p>" * 5, subtype="html")
    return mail.as_bytes()


def seed_captured(db: Database, account_id: int, inbox_id: int, total: int) -> None:
    now = datetime.now(UTC)
    for start in range(0, total, CHUNK):
        rows = []
        for n in range(start, min(start + CHUNK, total)):
            raw = captured_raw(n)
            rows.append(
                {
                    "inbox_id": inbox_id,
                    "account_id": account_id,
                    "message_id": None,
                    "subject": f"Captured {n}",
                    "from_email": "app@example.com",
                    "from_name": "App",
                    "to_email": f"user{n}@example.com",
                    "to_name": "",
                    "mail_from": "app@example.com",
                    "client_ip": "127.0.0.1",
                    "raw": raw,
                    "email_size": len(raw),
                    "text_body_size": 150,
                    "html_body_size": 220,
                    "is_read": n % 3 == 0,
                    "created_at": now - timedelta(seconds=total - n),
                    "updated_at": now,
                }
            )
        db.write_sync(lambda conn, r=rows: conn.execute(sandbox_messages.insert(), r))


def first_inbox(conn: Any) -> tuple[int, int]:
    """The seeded account and its inbox (the first ones: the bench made them)."""
    row = conn.execute(select(inboxes.c.account_id, inboxes.c.id).order_by(inboxes.c.id)).first()
    assert row is not None, "--seeded: this database has no inbox"
    return int(row[0]), int(row[1])


def sign_in(client: TestClient, email: str) -> None:
    import re

    page = client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert csrf
    answer = client.post(
        "/ui/login", data={"csrf": csrf.group(1), "email": email, "password": PASSWORD}
    )
    assert answer.status_code == 303, answer.text[:300]


def measure(client: TestClient, path: str, repeats: int) -> tuple[float, float, int]:
    times = []
    status = 0
    for _ in range(repeats):
        began = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        status = answer.status_code
    times.sort()
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    return statistics.median(times), p95, status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--captured", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument(
        "--seeded", action="store_true", help="the database is seeded already: time it again"
    )
    parser.add_argument(
        "--data-dir", default=None, help="default: a temp dir (pass the same one with --seeded)"
    )
    opts = parser.parse_args(argv)
    if opts.seeded and not opts.database_url:
        parser.error("--seeded needs --database-url")
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        url = opts.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings(
            storage={"data_dir": Path(opts.data_dir or Path(tmp) / "data"), "database_url": url},
            ratelimits={"enabled": False},
        )
        db = Database.from_url(settings.database_url)
        began = time.perf_counter()
        upgrade(db.engine)
        if opts.seeded:
            console.print(f"migrations: {time.perf_counter() - began:.1f} s")
        services = Services(settings=settings, db=db)
        email = "bench@example.com"
        if opts.seeded:
            account_id, inbox_id = db.read_sync(first_inbox)
        else:
            boot = bootstrap(services)
            assert boot is not None
            account_id, inbox_id = boot.account_id, boot.inbox_id
            with Progress(console=console, transient=True) as progress:
                events = seed(db, account_id, opts.messages, opts.days, progress)
                fold(services, events, progress)
            seed_captured(db, account_id, inbox_id, opts.captured)
            db.write_sync(
                user_service.create_user(
                    services, account_id, email, PASSWORD, "owner", Actor.cli()
                )
            )
            if db.engine.dialect.name == "postgresql":
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.execute(text("VACUUM ANALYZE"))
        some_delivery = db.read_sync(
            lambda c: c.execute(select(deliveries.c.id).limit(1).offset(1000)).scalar()
        )
        newest_capture = db.read_sync(
            lambda c: c.execute(
                select(sandbox_messages.c.id).order_by(sandbox_messages.c.id.desc()).limit(1)
            ).scalar()
        )
        app = create_app(services)
        install(app)
        pages = [
            "/",
            "/?days=90",
            "/ui/logs",
            "/ui/logs?to=user12345",
            # A common term (a ninth of the recipients), and one on the messages' side.
            "/ui/logs?to=gmail.com",
            "/ui/logs?subject=receipt&from=shop.example",
            "/ui/logs?status=delivered&stream=bulk",
            f"/ui/logs/{some_delivery}",
            "/ui/sandbox",
            f"/ui/sandbox/{inbox_id}",
            f"/ui/sandbox/{inbox_id}/messages",
            f"/ui/sandbox/{inbox_id}?q=Captured%2099999",
            f"/ui/sandbox/{inbox_id}?q=example.com",  # every message matches
            f"/ui/sandbox/{inbox_id}/m/{newest_capture}",
            "/ui/domains",
            "/ui/templates",
            "/ui/suppressions",
            "/ui/tokens",
            "/ui/account",
        ]
        table = Table(
            title=f"Dashboard server time: {opts.messages:,} messages, "
            f"{opts.captured:,} captured ({db.engine.dialect.name})"
        )
        for column in ("page", "status", "median ms", "p95 ms", f"< {BUDGET_MS:.0f} ms"):
            table.add_column(column)
        rows: list[Any] = []
        with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
            sign_in(client, email)
            for path in pages:
                client.get(path)  # warm: templates compiled, caches filled
                median, p95, status = measure(client, path, opts.repeats)
                rows.append((path, status, median, p95))
                ok = "yes" if median < BUDGET_MS else "NO"
                table.add_row(path, str(status), f"{median:.1f}", f"{p95:.1f}", ok)
        console.print(table)
        db.close()
    return 0 if all(r[1] == 200 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
