"""Stats benchmark (F6): stats API answers over one million messages, from the rollups.

What it measures
----------------
For each backend (SQLite in a temporary directory, PostgreSQL in a schema it creates and
drops) the script seeds ``--messages`` (default 1,000,000) one-recipient messages spread
over ``--days`` (30) days, three sending domains, both streams, eight categories and nine
recipient domains whose mail lands at eight mailbox providers, with their events: one
``accepted`` per message, a ``delivery`` (≈95 %), ``bounce`` (≈3 %) or ``soft_bounce``
then ``delivery`` (≈2 %), opens (≈35 %, some twice), clicks (≈10 %) and spam
complaints (≈0.2 %) — about 2.5 events per message, inserted in bulk.

Then it runs the real stats consumer (:func:`postroom.services.rollups.consume`) until
the cursor reaches the last event, and reports events folded per second. Then it times
the five stats endpoints over the whole range through the HTTP app (FastAPI, auth, the
query-string parser, JSON), ``--repeats`` times each (median and p95), and, as the
reference in the same run, the same aggregate computed by a raw ``GROUP BY`` over
``events ⋈ deliveries ⋈ messages`` (what answering without rollups costs;
``--baseline-repeats`` times). ``ratio`` = baseline median ÷ rollup median.

Usage (from the repository root)::

    .venv/bin/python bench/stats.py                         # 1,000,000 messages, both
    .venv/bin/python bench/stats.py --messages 100000 --backend sqlite   # smoke test

PostgreSQL is ``postgresql+psycopg://postgres@127.0.0.1:5432/test`` (``--pg-url``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import and_, case, create_engine, distinct, func, select, text
from starlette.testclient import TestClient

from postroom.api.app import create_app
from postroom.config import Settings
from postroom.services import Services, rollups
from postroom.services.accounts import bootstrap
from postroom.storage.db import Database
from postroom.storage.migrate import upgrade
from postroom.storage.tables import deliveries, event_cursors, events, messages, sending_domains

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
END = datetime(2026, 11, 1, tzinfo=UTC)
DOMAINS = ("shop.example", "news.example", "billing.example")
CATEGORIES = ("welcome", "receipt", "reset", "digest", "invoice", "alert", "promo", "survey")
# recipient domain → (MX host, provider the MX engine would record)
RECIPIENTS = (
    ("gmail.com", "gmail-smtp-in.l.google.com", "Google"),
    ("yahoo.com", "mta5.am0.yahoodns.net", "Yahoo"),
    ("outlook.com", "outlook-com.olc.protection.outlook.com", "Outlook"),
    ("icloud.com", "mx01.mail.icloud.com", "iCloud"),
    ("acme-corp.test", "aspmx.l.google.com", "Google Workspace"),
    ("contoso.test", "contoso-test.mail.protection.outlook.com", "Office 365"),
    ("proton.me", "mail.protonmail.ch", "ProtonMail"),
    ("yandex.ru", "mx.yandex.net", "Yandex"),
    ("small-biz.test", "mx.small-biz.test", "Other"),
)
CHUNK = 20_000
console = Console()


@dataclass
class Timing:
    name: str
    median_ms: float
    p95_ms: float
    repeats: int


@dataclass
class Result:
    backend: str
    messages: int
    events: int
    seed_s: float
    fold_s: float
    rollup_rows: int
    timings: list[Timing]
    baseline: Timing
    aggregate: dict[str, Any]
    baseline_counts: dict[str, int]


# --- seeding -------------------------------------------------------------------------------


def _uuid(rand: random.Random) -> str:
    return str(uuid.UUID(int=rand.getrandbits(128), version=4))


def generate(
    rand: random.Random, account_id: int, start: int, count: int, days: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows for messages [start, start+count): messages, deliveries, events."""
    msgs, dels, evs = [], [], []
    span = days * 86400
    for i in range(start, start + count):
        sent = END - timedelta(seconds=rand.random() * span)
        mid = _uuid(rand)
        domain = DOMAINS[i % 3]
        rdomain, mx, provider = RECIPIENTS[rand.randrange(len(RECIPIENTS))]
        stream = "bulk" if i % 4 == 0 else "transactional"
        recipient = f"user{i}@{rdomain}"
        msgs.append(
            {
                "id": mid,
                "account_id": account_id,
                "stream": stream,
                "sender": f"hello@{domain}",
                "subject": "Your receipt",
                "rfc_message_id": f"<{mid}@{domain}>",
                "category": CATEGORIES[rand.randrange(len(CATEGORIES))],
                "size": 5000,
                "created_at": sent,
            }
        )
        roll = rand.random()
        state = "bounced" if roll < 0.03 else "delivered"
        dels.append(
            {
                "id": mid,
                "message_id": mid,
                "account_id": account_id,
                "stream": stream,
                "recipient": recipient,
                "recipient_domain": rdomain,
                "recipient_kind": "to",
                "position": 0,
                "state": state,
                "priority": 0,
                "next_attempt_at": sent,
                "attempts": 1,
                "lease_count": 1,
                "created_at": sent,
                "updated_at": sent,
            }
        )
        routed = {
            "sending_ip": "192.0.2.10",
            "recipient_mx": mx,
            "email_service_provider": provider,
        }

        about = {
            "account_id": account_id,
            "message_id": mid,
            "stream": stream,
            "recipient": recipient,
            "sent": sent,
        }

        def event(kind: str, after: float, details: dict[str, Any], about: Any = about) -> None:
            evs.append(
                {
                    **{k: v for k, v in about.items() if k != "sent"},
                    "event_id": _uuid(rand),
                    "kind": kind,
                    "details": details,
                    "created_at": about["sent"] + timedelta(seconds=after),
                }
            )

        event("accepted", 0, {})
        if roll < 0.03:
            event("bounce", 5, {**routed, "bounce_category": "bad_mailbox"})
            continue
        if roll < 0.05:
            event("soft_bounce", 5, routed)
        event("delivery", 10, routed)
        if rand.random() < 0.35:
            event("open", 3600, {"web_ip_address": "203.0.113.1"})
            if rand.random() < 0.3:
                event("open", 7200, {"web_ip_address": "203.0.113.1"})
            if rand.random() < 0.3:
                event(
                    "click", 3700, {"click_url": "https://x.test", "web_ip_address": "203.0.113.1"}
                )
        if rand.random() < 0.002:
            event("spam", 9000, {"spam_feedback_type": "abuse"})
    return msgs, dels, evs


def seed(db: Database, account_id: int, total: int, days: int, progress: Progress) -> int:
    rand = random.Random(6)
    task = progress.add_task("seed messages", total=total)
    written = 0
    for start in range(0, total, CHUNK):
        msgs, dels, evs = generate(rand, account_id, start, min(CHUNK, total - start), days)

        def write(conn: Any, m: Any = msgs, d: Any = dels, e: Any = evs) -> None:
            conn.execute(messages.insert(), m)
            conn.execute(deliveries.insert(), d)
            conn.execute(events.insert(), e)

        db.write_sync(write)
        written += len(evs)
        progress.update(task, advance=len(msgs))
    return written


def fold(services: Services, total_events: int, progress: Progress) -> float:
    """Run the real consumer to the end of the log; returns seconds taken."""
    services.settings.insights.stats_settle_seconds = 0
    task = progress.add_task("fold events", total=total_events)
    last = services.db.read_sync(lambda c: c.execute(select(func.max(events.c.id))).scalar())
    began = time.perf_counter()
    while True:
        asyncio.run(rollups.consume(services, max_batches=10))
        at = services.db.read_sync(
            lambda c: c.execute(
                select(event_cursors.c.last_event_id).where(event_cursors.c.name == "stats")
            ).scalar()
        )
        progress.update(task, completed=min(int(at or 0), total_events))
        if at == last:
            return time.perf_counter() - began


# --- timing --------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], repeats: int) -> tuple[Timing, Any]:
    fn()  # warm caches, plans and the token cache
    samples, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
    return Timing("", statistics.median(samples), p95, repeats), result


def baseline_query(account_id: int, start: datetime, end: datetime) -> Any:
    """The aggregate without rollups: counts straight from the event log."""
    e, d = events.c, deliveries.c

    def n(kind: str) -> Any:
        return func.count(distinct(case((e.kind == kind, e.message_id))))

    return (
        select(
            func.sum(case((e.kind == "delivery", 1), else_=0)).label("delivered"),
            func.sum(case((e.kind == "bounce", 1), else_=0)).label("bounced"),
            n("open").label("opened"),
            n("click").label("clicked"),
            func.sum(case((e.kind == "spam", 1), else_=0)).label("spam"),
        )
        .select_from(
            events.join(deliveries, d.id == e.message_id).join(
                messages, messages.c.id == d.message_id
            )
        )
        .where(
            and_(
                d.account_id == account_id,
                d.created_at >= start,
                d.created_at < end,
                e.kind.in_(["delivery", "bounce", "open", "click", "spam"]),
            )
        )
    )


def measure(
    services: Services, token: str, account_id: int, opts: argparse.Namespace
) -> tuple[list[Timing], dict[str, Any]]:
    first = (END - timedelta(days=opts.days)).date().isoformat()
    query = f"start_date={first}&end_date={END.date().isoformat()}"
    timings = []
    aggregate: dict[str, Any] = {}
    with TestClient(create_app(services)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        for path in ("", "/domains", "/categories", "/email_service_providers", "/date"):
            url = f"/api/accounts/{account_id}/stats{path}?{query}"

            def call(u: str = url) -> Any:
                response = client.get(u)
                assert response.status_code == 200, response.text
                return response.json()

            timing, body = timed(call, opts.repeats)
            timing.name = f"GET …/stats{path}"
            timings.append(timing)
            if path == "":
                aggregate = body
        # One filtered request, the PY wire form.
        url = (
            f"/api/accounts/{account_id}/stats/categories?{query}"
            "&sending_streams%5B%5D=transactional&email_service_providers%5B%5D=Google"
            "&email_service_providers%5B%5D=Yahoo"
        )
        timing, _ = timed(lambda: client.get(url).json(), opts.repeats)
        timing.name = "GET …/stats/categories + 2 filters"
        timings.append(timing)
        if opts.logs:
            timings += measure_logs(client, account_id, opts)
    return timings, aggregate


def measure_logs(client: TestClient, account_id: int, opts: argparse.Namespace) -> list[Timing]:
    """Email-log pages for context (they read deliveries, not rollups; each page counts
    ``total_count`` over every match)."""
    base = f"/api/accounts/{account_id}/email_logs"
    first = client.get(base).json()
    pages = {
        "GET …/email_logs (first page)": base,
        "GET …/email_logs (second page)": f"{base}?search_after={first['next_page_cursor']}",
        "GET …/email_logs to ci_contain + category": (
            f"{base}?filters[to][operator]=ci_contain&filters[to][value]=yahoo"
            "&filters[category][operator]=equal&filters[category][value]=reset"
        ),
    }
    found = []
    for name, url in pages.items():
        timing, _ = timed(lambda u=url: client.get(u).json(), max(3, opts.repeats // 5))
        timing.name = name
        found.append(timing)
    return found


def run_backend(backend: str, opts: argparse.Namespace, progress: Progress) -> Result:
    with (
        tempfile.TemporaryDirectory(prefix="postroom-stats-") as tmp,
        _database(backend, opts, Path(tmp)) as url,
    ):
        # Rate limits off: the bench repeats each stats query far past 10 a minute.
        settings = Settings(
            storage={"data_dir": Path(tmp) / "data", "database_url": url},
            ratelimits={"enabled": False},
        )
        db = Database.from_url(url)
        upgrade(db.engine)
        services = Services(settings=settings, db=db)
        boot = bootstrap(services)
        assert boot is not None
        now = datetime.now(UTC)
        db.write_sync(
            lambda c: c.execute(
                sending_domains.insert(),
                [
                    {
                        "account_id": boot.account_id,
                        "domain_name": name,
                        "ascii_name": name,
                        "dns_results": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for name in DOMAINS
                ],
            )
        )
        began = time.perf_counter()
        total_events = seed(db, boot.account_id, opts.messages, opts.days, progress)
        if backend == "postgres":
            db.write_sync(lambda c: c.execute(text("ANALYZE")))
        seed_s = time.perf_counter() - began
        fold_s = fold(services, total_events, progress)
        if backend == "postgres":
            db.write_sync(lambda c: c.execute(text("ANALYZE")))
        rows = db.read_sync(lambda c: c.execute(text("SELECT count(*) FROM stats_daily")).scalar())
        timings, aggregate = measure(services, boot.token, boot.account_id, opts)
        start = END - timedelta(days=opts.days + 1)
        query = baseline_query(boot.account_id, start, END + timedelta(days=1))
        base, counts = timed(
            lambda: dict(db.read_sync(lambda c: c.execute(query).mappings().one())),
            opts.baseline_repeats,
        )
        base.name = "raw GROUP BY over events (aggregate)"
        db.close()
        return Result(
            backend,
            opts.messages,
            total_events,
            seed_s,
            fold_s,
            int(rows or 0),
            timings,
            base,
            aggregate,
            {k: int(v or 0) for k, v in counts.items()},
        )


class _database:
    """A fresh database URL for ``backend`` (a PostgreSQL schema is dropped afterwards)."""

    def __init__(self, backend: str, opts: argparse.Namespace, tmp: Path) -> None:
        self.backend, self.opts, self.tmp = backend, opts, tmp
        self.schema = f"bench_stats_{secrets.token_hex(4)}"

    def __enter__(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp / 'stats.db'}"
        admin = create_engine(self.opts.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {self.schema}"))
        admin.dispose()
        sep = "&" if "?" in self.opts.pg_url else "?"
        return f"{self.opts.pg_url}{sep}options=-csearch_path%3D{self.schema}"

    def __exit__(self, *exc: object) -> None:
        if self.backend == "postgres":
            admin = create_engine(self.opts.pg_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA {self.schema} CASCADE"))
            admin.dispose()


# --- report --------------------------------------------------------------------------------


def report(results: list[Result]) -> None:
    for r in results:
        table = Table(
            title=f"{r.backend}: {r.messages:,} messages, {r.events:,} events, "
            f"{r.rollup_rows:,} rollup rows"
        )
        for column in ("query", "median ms", "p95 ms", "repeats", "ratio vs raw"):
            table.add_column(column, justify="right" if column != "query" else "left")
        for t in r.timings:
            ratio = "—" if "email_logs" in t.name else f"{r.baseline.median_ms / t.median_ms:,.0f}×"
            table.add_row(t.name, f"{t.median_ms:.1f}", f"{t.p95_ms:.1f}", str(t.repeats), ratio)
        b = r.baseline
        table.add_row(b.name, f"{b.median_ms:.1f}", f"{b.p95_ms:.1f}", str(b.repeats), "1×")
        console.print(table)
        console.print(
            f"  seed {r.seed_s:.1f} s; fold {r.fold_s:.1f} s = "
            f"{r.events / r.fold_s:,.0f} events/s through the consumer"
        )
        agg = r.aggregate
        same = (
            agg["delivery_count"] == r.baseline_counts["delivered"]
            and agg["bounce_count"] == r.baseline_counts["bounced"]
            and agg["open_count"] == r.baseline_counts["opened"]
            and agg["click_count"] == r.baseline_counts["clicked"]
            and agg["spam_count"] == r.baseline_counts["spam"]
        )
        console.print(f"  rollup aggregate {agg}")
        console.print(f"  raw counts       {r.baseline_counts}  → {'same' if same else 'DIFFER'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--baseline-repeats", type=int, default=3)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument(
        "--logs", action="store_true", help="also time email-log pages (for context)"
    )
    return parser.parse_args(argv)


def backends(choice: str) -> Iterator[str]:
    yield from ("sqlite", "postgres") if choice == "both" else (choice,)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    results = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    for backend in backends(opts.backend):
        console.rule(f"{backend}")
        with Progress(*columns, console=console) as progress:
            results.append(run_backend(backend, opts, progress))
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
