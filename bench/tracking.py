"""Tracking benchmark (F10): click redirects per second on the tracking listener.

What it measures
----------------
A fresh SQLite database (``synchronous=FULL``; or ``--database-url`` for PostgreSQL) is
seeded with ``--messages`` delivered messages of ``--links`` tracked links each, and a
click URL is made for every (delivery, link). Then, each in its own process on uvicorn
with uvloop and httptools (the settings ``postroom serve`` uses):

* **Postroom**: the tracking app (``postroom.api.tracking``). Every click verifies its
  token, finds the delivery and the link (cached after the first read), classifies the
  client, and records a ``click`` event (group commit) before answering ``302``;
* **bare**: a Starlette app whose one route answers the same ``302`` to a constant URL.

Two runs each:

1. **saturation**: ``--connections`` keep-alive connections for ``--duration`` seconds,
   every request a different click URL (round robin): requests per second. With ``wrk``
   installed (``apt-get install -y wrk``) it is the load generator (a Lua script walks
   the URL list); otherwise an asyncio client in this process, which takes CPU from the
   same cores. ``ratio = Postroom / bare``; the goal is ≥ 0.5.
2. **fixed rate**: ``--rate`` clicks per second (default 1,000) for ``--duration``
   seconds from an open-loop asyncio client (each request's latency counts from the
   moment it was due, so a slow server cannot hide its queue), reporting p50/p99/max;
   the goal is p99 < 20 ms.

Run: ``.venv/bin/python bench/tracking.py`` (``--quick`` for a 3 s smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"
TARGET = "https://example.org/landing?utm_source=mail"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the servers (run as subprocesses of this script) ---------------------------------------


def serve(kind: str, port: int, database_url: str, data_dir: str) -> None:
    import uvicorn

    if kind == "bare":
        from starlette.applications import Starlette
        from starlette.responses import RedirectResponse
        from starlette.routing import Route

        async def click(request: object) -> RedirectResponse:
            return RedirectResponse(TARGET, status_code=302)

        app = Starlette(routes=[Route("/c/{token}", click)])
        services = None
    else:
        from postroom.api.tracking import create_tracking_app
        from postroom.config import Settings
        from postroom.services import Services
        from postroom.storage.db import Database

        settings = Settings(storage={"data_dir": data_dir, "database_url": database_url})
        services = Services(settings=settings, db=Database.from_url(settings.database_url))
        app = create_tracking_app(services)
    sys.setswitchinterval(0.0005)  # as postroom serve does
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="off",
    )
    uvicorn.Server(config).run()


# --- seeding ------------------------------------------------------------------------------


def seed(database_url: str, data_dir: str, messages: int, links: int) -> list[str]:
    """Delivered messages with tracked links; returns one click path per (delivery, link)."""
    from sqlalchemy import insert

    from postroom.config import Settings
    from postroom.services import Services, tracking
    from postroom.services.accounts import bootstrap
    from postroom.storage.db import Database
    from postroom.storage.migrate import upgrade
    from postroom.storage.tables import deliveries, message_bodies, tracked_links
    from postroom.storage.tables import messages as message_table

    settings = Settings(storage={"data_dir": data_dir, "database_url": database_url})
    db = Database.from_url(settings.database_url)
    upgrade(db.engine)
    services = Services(settings=settings, db=db)
    boot = bootstrap(services)
    assert boot is not None
    now = datetime.now(UTC)
    sent = now - timedelta(hours=1)
    message_rows, body_rows, delivery_rows, link_rows, paths = [], [], [], [], []
    for _ in range(messages):
        mid = services.ids.message_id()
        message_rows.append(
            {"id": mid, "account_id": boot.account_id, "stream": "bulk",
             "sender": "news@shop.example", "subject": "News", "rfc_message_id": f"<{mid}@x>",
             "size": 100, "created_at": sent}
        )  # fmt: skip
        body_rows.append({"message_id": mid, "raw": b"x"})
        delivery_rows.append(
            {"id": mid, "message_id": mid, "account_id": boot.account_id, "stream": "bulk",
             "recipient": f"r{len(paths)}@dest.example", "recipient_domain": "dest.example",
             "recipient_kind": "to", "position": 0, "state": "delivered", "priority": 1,
             "next_attempt_at": sent, "attempts": 1, "lease_count": 1, "created_at": sent,
             "updated_at": sent}
        )  # fmt: skip
        made = tracking.links(services, None, mid, now)
        for i in range(links):
            link_rows.append(
                {"message_id": mid, "position": i, "url": f"{TARGET}&l={i}", "created_at": sent}
            )
            paths.append(f"/c/{made.token(tracking.Kind.CLICK, i)}")

    def write(conn: object) -> None:
        for table, rows in (
            (message_table, message_rows),
            (message_bodies, body_rows),
            (deliveries, delivery_rows),
            (tracked_links, link_rows),
        ):
            conn.execute(insert(table), rows)  # type: ignore[attr-defined]

    db.write_sync(write)
    db.close()
    return paths


# --- load ---------------------------------------------------------------------------------


def start(
    kind: str, port: int, database_url: str, data_dir: str, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    args = [sys.executable, __file__, "--serve", kind, "--port", str(port),
            "--database-url", database_url, "--data-dir", data_dir]  # fmt: skip
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start: {proc.stderr.read() if proc.stderr else ''}")


def wrk(port: int, paths: list[str], connections: int, duration: float, scratch: Path) -> float:
    listing = scratch / "paths.txt"
    listing.write_text("\n".join(paths) + "\n")
    script = scratch / "paths.lua"
    script.write_text(
        f'local paths = {{}}\nfor line in io.lines("{listing}") do paths[#paths + 1] = line end\n'
        "local i = 0\n"
        "request = function()\n  i = i % #paths + 1\n"
        f'  return wrk.format("GET", paths[i], {{["User-Agent"] = "{CHROME}"}})\nend\n'
    )
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(duration))}s", "-s", str(script),
         f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if found is None or bad is not None:
        raise RuntimeError(done.stdout)
    return float(found.group(1))


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {CHROME}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if length:
        await reader.readexactly(int(length.group(1)))
    return status


async def saturate(port: int, paths: list[str], connections: int, duration: float) -> float:
    done = 0
    stop = time.monotonic() + duration

    async def one(offset: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        while time.monotonic() < stop:
            if await _get(reader, writer, paths[i % len(paths)]) != 302:
                raise RuntimeError("not a redirect")
            done += 1
            i += connections
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(one(k) for k in range(connections)))
    return done / (time.monotonic() - started)


async def fixed_rate(port: int, paths: list[str], rate: float, duration: float) -> list[float]:
    """Open loop: request n is due at start + n/rate; latency counts from then."""
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    start = time.monotonic() + 0.1
    total = int(rate * duration)

    async def one(n: int) -> None:
        due = start + n / rate
        conn = await pool.get()
        if await _get(*conn, paths[n % len(paths)]) != 302:
            raise RuntimeError("not a redirect")
        latencies.append(time.monotonic() - due)
        pool.put_nowait(conn)

    tasks = []
    for n in range(total):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=["postroom", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--links", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--client", choices=["auto", "wrk", "asyncio"], default="auto")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.database_url, args.data_dir)
        return
    if args.quick:
        args.duration, args.messages = 3.0, 300
    scratch = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    database_url = args.database_url or f"sqlite:///{scratch / 'postroom.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env["POSTROOM_SECURITY__SECRET_KEY"] = Fernet.generate_key().decode()
    os.environ.update({"POSTROOM_SECURITY__SECRET_KEY": env["POSTROOM_SECURITY__SECRET_KEY"]})
    paths = seed(database_url, str(scratch), args.messages, args.links)
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
    figures: dict[str, float] = {}
    latencies: list[float] = []
    try:
        for kind in ("bare", "postroom"):
            port = free_port()
            proc = start(kind, port, database_url, str(scratch), env)
            try:
                warm = paths[:2000] if kind == "postroom" else paths[:10]
                asyncio.run(saturate(port, warm, 8, 1.0))
                if use_wrk:
                    figures[kind] = wrk(port, paths, args.connections, args.duration, scratch)
                else:
                    figures[kind] = asyncio.run(
                        saturate(port, paths, args.connections, args.duration)
                    )
                if kind == "postroom":
                    latencies = asyncio.run(fixed_rate(port, paths, args.rate, args.duration))
            finally:
                proc.terminate()
                proc.wait(timeout=20)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    client = "wrk" if use_wrk else "asyncio client"
    ratio = figures["postroom"] / figures["bare"]
    print(f"load generator: {client}, {args.connections} connections, {args.duration:.0f} s")
    print(f"{'':24}{'redirects/s':>12}")
    print(f"{'bare Starlette 302':24}{figures['bare']:>12,.0f}")
    print(f"{'Postroom tracking':24}{figures['postroom']:>12,.0f}")
    print(f"ratio {ratio:.2f} (goal >= 0.5)")
    ms = [x * 1000 for x in latencies]
    p50, p99 = statistics.median(ms), percentile(ms, 0.99)
    print(
        f"at {args.rate:,.0f} clicks/s for {args.duration:.0f} s: p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms, max {max(ms):.1f} ms (goal p99 < 20 ms)"
    )


if __name__ == "__main__":
    main()
