"""Worker scaling (F13): one queue on PostgreSQL drained by 1, then 3 ``postroom worker``.

What it measures: ``--messages`` queued ~5 KB messages (the body of bench/delivery.py,
DKIM-signed with a verified domain's keys) are delivered in mx mode to an aiosmtpd
receiver on 127.0.0.2 (its MX published in a local name server, tests/dnsserver.py) by K
worker processes at once, for each K of ``--workers`` (default 1,3). For each K: a fresh
PostgreSQL schema, ``postroom api`` alone (no worker: the queue only fills) enqueues the
messages through /api/batch, then K ``postroom worker`` start together and the script
polls the deliveries every 100 ms. The rate is the deliveries completed between the first
poll that sees one and the one that sees the queue empty, divided by that time.

Site limits are lifted as in bench/delivery.py (20 connections, 6e6/minute per worker;
no Redis, so each worker has its own budget), so the workers, the database and the
receiver are what is measured. The receiver is Python (aiosmtpd) in this process, which
caps what any K can show; bench/delivery.py has the Postfix smtp-sink reference.

Usage: ``.venv/bin/python bench/workers.py [--messages 3000] [--workers 1,3]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]

from delivery import (  # noqa: E402
    LIFT_THROTTLE,
    RCPT_DOMAIN,
    SINK_HOST,
    enqueue,
    free_port_on,
    setup_domain,
)
from ingest import PG_URL, TOKEN_RE, console, free_port, stop_process, wait_for_port  # noqa: E402

from dnsserver import LocalDnsServer  # noqa: E402


class Sink:
    """Counts what arrives; answers 250 at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.received += len(envelope.rcpt_tos)
        return "250 2.0.0 Ok"


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "postroom", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
        )


def run_once(workers: int, messages: int, pg_url: str, sink_port: int) -> dict[str, float]:
    schema = f"bench_workers_{os.getpid()}_{workers}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in pg_url else "?"
    url = f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    work = Path(tempfile.mkdtemp(prefix=f"workers-{workers}-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with LocalDnsServer() as dns:
            dns.add_mx(RCPT_DOMAIN, 10, f"mx1.{RCPT_DOMAIN}")
            dns.add_a(f"mx1.{RCPT_DOMAIN}", SINK_HOST)
            env = {
                **LIFT_THROTTLE,
                "POSTROOM_DELIVERY__MODE": "mx",
                "POSTROOM_DNS__SERVER": dns.address,
                "POSTROOM_DELIVERY__PORT": str(sink_port),
                "POSTROOM_DELIVERY__WORKER_BATCH": "500",
                "POSTROOM_RATELIMITS__ENABLED": "false",
            }
            storage = ["--data-dir", str(work / "data"), "--database-url", url]
            port = free_port()
            api = _start(
                ["api", *storage, "--port", str(port), "--bulk-port", str(free_port()),
                 "--tracking-port", "0"],
                env, work / "api.log",
            )  # fmt: skip
            procs.append(api)
            wait_for_port(port, api, 60)
            deadline = time.monotonic() + 60
            while not (token := TOKEN_RE.search((work / "api.log").read_text())):
                if time.monotonic() > deadline:
                    raise RuntimeError("postroom api printed no token")
                time.sleep(0.05)
            base = f"http://127.0.0.1:{port}"
            headers = {"Authorization": f"Bearer {token.group(0)}"}
            with httpx.Client(headers=headers, timeout=120) as client:
                account = str(client.get(f"{base}/api/accounts").json()[0]["id"])
                setup_domain(client, base, account, dns)
                enqueue(client, base, messages)
            engine = create_engine(url)

            def delivered() -> int:
                with engine.connect() as conn:
                    query = "SELECT count(*) FROM deliveries WHERE state = 'delivered'"
                    return int(conn.execute(text(query)).scalar() or 0)

            started = time.perf_counter()
            for k in range(workers):
                procs.append(_start(["worker", *storage], env, work / f"worker{k}.log"))
            first_at, first_n = 0.0, 0
            deadline = time.monotonic() + 900
            while True:
                n = delivered()
                now = time.perf_counter()
                if n and not first_at:
                    first_at, first_n = now, n
                if n >= messages:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {n} of {messages} delivered")
                time.sleep(0.1)
            engine.dispose()
            rate = (n - first_n) / (now - first_at) if now > first_at else 0.0
            return {"workers": workers, "rate": rate, "from_start": n / (now - started)}
    finally:
        for proc in procs:
            stop_process(proc)
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--workers", default="1,3", help="comma-separated worker counts")
    p.add_argument("--pg-url", default=PG_URL)
    args = p.parse_args(argv)
    sink = Sink()
    sink_port = free_port_on(SINK_HOST)
    controller = Controller(sink, hostname=SINK_HOST, port=sink_port)
    controller.start()
    try:
        for count in [int(c) for c in args.workers.split(",")]:
            result = run_once(count, args.messages, args.pg_url, sink_port)
            console.print(
                f"{count} worker(s): {result['rate']:,.0f} deliveries/s "
                f"({result['from_start']:,.0f}/s from the workers' start), "
                f"{args.messages:,} messages, PostgreSQL"
            )
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
