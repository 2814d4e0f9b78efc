"""Webhook throughput: events per second from the outbox to a local receiver (F9).

    .venv/bin/python bench/webhooks.py [--events 100000] [--backend sqlite|postgres]
                                       [--rate 1000] [--rate-seconds 20] [--quick]

1. A receiver runs in its own process: uvicorn with a bare ASGI app that counts the
   events of each POST (``"event_id"`` occurrences) and, for the latency run, reads each
   event's ``response`` field, where the bench put the time the event was recorded.
2. **Ceiling**: a bare httpx client POSTs ready-made 500-event bodies to it for a few
   seconds, a new connection per POST (as Postroom's egress client does), one POST at a
   time (as Postroom does per webhook).
3. **Throughput**: ``--events`` delivery events are recorded through
   ``messages.insert_events`` (so with their outbox rows) on a migrated database; then
   the webhook dispatcher (``WebhookDispatcher.run``, as ``serve`` runs it, in this
   process) batches and POSTs them, and the time until the receiver has counted them all gives
   events/s. Outbox → batch → render → sign → POST → commit, everything real.
4. **Latency**: events are recorded at ``--rate`` per second for ``--rate-seconds``
   while the dispatcher runs (``flush_seconds`` as shipped, 1 s); the receiver reports
   p50/p99 from recording to arrival.

Mail is not being delivered during the latency run (the issue's goal says "while mail is
being delivered"): the delivery bench is separate; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("POSTROOM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# --- the receiver (a separate process) ----------------------------------------------------


def receiver_main(port: int) -> None:
    import uvicorn

    state: dict[str, Any] = {"events": 0, "posts": 0, "latencies": []}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] == "GET":
            payload = json.dumps(state).encode()
            if scope["path"] == "/reset":
                state.update(events=0, posts=0, latencies=[])
        else:
            now = time.time()
            state["events"] += body.count(b'"event_id"')
            state["posts"] += 1
            if scope["path"] == "/latency":
                for event in json.loads(body)["events"]:
                    state["latencies"].append(now - float(event["response"]))
            payload = b"ok"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": payload})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_receiver() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--receiver", str(port)])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/stats", timeout=1)
            return proc, port
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the receiver did not start")


_STATS = httpx.Client(timeout=10)  # one client: a new one per call would load a CA store


def stats(port: int, reset: bool = False) -> dict[str, Any]:
    path = "/reset" if reset else "/stats"
    found: dict[str, Any] = _STATS.get(f"http://127.0.0.1:{port}{path}").json()
    return found


# --- ceiling: a bare client ---------------------------------------------------------------


def sample_body(events: int) -> bytes:
    one = {
        "event": "delivery",
        "message_id": "1df37d17-0286-4d8b-8edf-bc4ec5be86e6",
        "email": "receiver@example.com",
        "event_id": "bede7236-2284-43d6-a953-1fdcafd0fdbc",
        "timestamp": 1728669700,
        "sending_stream": "transactional",
        "sending_domain_name": "examplesender.com",
        "category": "orders",
        "custom_variables": {"n": 1},
        "response": "250 2.0.0 Ok: queued as ABC123",
    }
    return json.dumps({"events": [one] * events}, separators=(",", ":")).encode()


async def ceiling(port: int, seconds: float) -> float:
    body = sample_body(500)
    stats(port, reset=True)
    sent = 0
    tls = httpx.create_ssl_context()  # built once, as EgressClient does
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(verify=tls, limits=limits) as c:
            response = await c.post(
                f"http://127.0.0.1:{port}/hook",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            response.raise_for_status()
        sent += 500
    elapsed = time.perf_counter() - start
    assert stats(port)["events"] == sent
    return sent / elapsed


# --- Postroom -----------------------------------------------------------------------------


def make_services(backend: str, tmp: Path) -> tuple[Any, Any]:
    from sqlalchemy import create_engine, text

    from postroom.config import Settings
    from postroom.services import Services
    from postroom.services.accounts import bootstrap
    from postroom.storage.db import Database
    from postroom.storage.migrate import upgrade

    cleanup = None
    if backend == "postgres":
        schema = f"bench_{secrets.token_hex(4)}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"

        def cleanup() -> None:
            with admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))

    else:
        url = f"sqlite:///{tmp / 'postroom.db'}"
    settings = Settings(
        storage={"data_dir": tmp / "data", "database_url": url},
        webhooks={"allowed_networks": ["127.0.0.0/8"], "allowed_ports": []},
    )
    db = Database.from_url(settings.database_url)
    upgrade(db.engine)
    services = Services(settings=settings, db=db)
    boot = bootstrap(services)
    assert boot is not None
    return services, (boot.account_id, cleanup)


def record(services: Any, account_id: int, count: int, stamp_response: bool) -> None:
    from postroom.domain.events import EventKind
    from postroom.events.recorder import event_row
    from postroom.storage.repos import messages as message_repo

    now = services.clock.now()
    rows = [
        event_row(
            services.ids,
            account_id,
            EventKind.DELIVERY,
            services.ids.message_id(),
            "transactional",
            f"rcpt{i}@example.com",
            {"response": repr(time.time()) if stamp_response else "250 2.0.0 Ok"},
            now,
        )
        for i in range(count)
    ]
    for start in range(0, len(rows), 5000):
        chunk = rows[start : start + 5000]
        services.db.write_sync(lambda c, chunk=chunk: message_repo.insert_events(c, chunk))


async def create_hook(services: Any, account_id: int, url: str) -> int:
    from postroom.services import webhooks

    created = await webhooks.create(
        services,
        account_id,
        {
            "webhook": {
                "url": url,
                "webhook_type": "email_sending",
                "sending_stream": "transactional",
                "event_types": ["delivery"],
            }
        },
    )
    return int(created.row["id"])


async def throughput(services: Any, account_id: int, port: int, events: int) -> float:
    from postroom.workers.webhooks import WebhookDispatcher

    await create_hook(services, account_id, f"http://127.0.0.1:{port}/hook")
    record(services, account_id, events, stamp_response=False)
    stats(port, reset=True)
    stop = asyncio.Event()
    start = time.perf_counter()
    running = asyncio.create_task(WebhookDispatcher(services).run(stop))
    while (await asyncio.to_thread(stats, port))["events"] < events:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    stop.set()
    await running
    return events / elapsed


async def latency(
    services: Any, account_id: int, port: int, rate: int, seconds: float
) -> tuple[float, float, int]:
    from postroom.services import webhooks as service
    from postroom.workers.webhooks import WebhookDispatcher

    for row in await service.list_webhooks(services, account_id):
        await service.delete(services, account_id, int(row["id"]))
    await create_hook(services, account_id, f"http://127.0.0.1:{port}/latency")
    stats(port, reset=True)
    stop = asyncio.Event()
    dispatcher = asyncio.create_task(WebhookDispatcher(services).run(stop))
    total = 0
    tick = 0.1
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        await asyncio.to_thread(record, services, account_id, int(rate * tick), True)
        total += int(rate * tick)
        await asyncio.sleep(max(0.0, start + (total / rate) - time.perf_counter()))
    deadline = time.perf_counter() + 30
    while stats(port)["events"] < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.2)
    stop.set()
    await dispatcher
    found = sorted(stats(port)["latencies"])
    p50 = statistics.median(found)
    p99 = found[int(len(found) * 0.99) - 1]
    return p50, p99, len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="10,000 events, 5 s latency run")
    args = parser.parse_args()
    if args.receiver:
        receiver_main(args.receiver)
        return
    if args.quick:
        args.events, args.rate_seconds = 10_000, 5.0
    proc, port = start_receiver()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            services, (account_id, cleanup) = make_services(args.backend, Path(tmp))
            try:
                bare = asyncio.run(ceiling(port, 5.0))
                ours = asyncio.run(throughput(services, account_id, port, args.events))
                p50, p99, n = asyncio.run(
                    latency(services, account_id, port, args.rate, args.rate_seconds)
                )
            finally:
                services.db.close()
                if cleanup:
                    cleanup()
    finally:
        proc.terminate()
        proc.wait()
    print(f"backend                 {args.backend}")
    print(f"receiver ceiling        {bare:,.0f} events/s (bare httpx, 500/POST, new connection)")
    print(f"outbox -> receiver      {ours:,.0f} events/s ({args.events:,} events)")
    print(f"ratio                   {ours / bare:.2f}")
    print(f"latency at {args.rate}/s      p50 {p50:.2f} s, p99 {p99:.2f} s ({n:,} events)")


if __name__ == "__main__":
    main()
