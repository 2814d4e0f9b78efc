"""Delivery benchmark (F3): deliveries per second from the queue to Postfix's smtp-sink.

What it measures
----------------
A fresh ``postroom serve --delivery-mode mx`` delivers ``--messages`` (default 5,000)
queued ~5 KB messages (text + 5 KB html, one recipient each), DKIM-signed with a verified
sending domain's active keys (RSA-2048 and Ed25519, both signatures on every message), to
Postfix's ``smtp-sink`` on 127.0.0.2. The recipient domain's MX is published in a local
name server (``tests/dnsserver.py``), so routing, DNS, DKIM, VERP return paths, the SMTP
sessions and the outcome writes are all the real code path.

How: the script starts ``smtp-sink -u nobody 127.0.0.2:P 1024`` and a LocalDnsServer,
then ``postroom serve`` with ``POSTROOM_DELIVERY__PORT=P`` and ``worker_batch=0`` (the
worker leases nothing), creates and verifies ``shop.example`` through the API (publishing
its records in the name server), and enqueues the messages with ``/api/batch``. It stops
that server and starts a new one on the same data directory with a real
``--worker-batch`` (default 500), so delivery starts on a full queue and ingest does not
compete with it. It polls ``deliveries`` (SQLite, read-only) every 50 ms. The rate is the
deliveries completed between the first poll that sees one and the poll that sees the
queue empty, divided by that time (the first round, spent before any row changes, is left
out; the figure "from start" includes it and the server's start-up).

Site throttle. Postroom shapes traffic per destination site; an unknown site (here
``dest.example``) gets the fallback limits (10 connections, 600 messages/minute), which
cap this benchmark at ~10/s. The main run therefore lifts them with the settings
``POSTROOM_DELIVERY__SITE_*`` (20 connections, 100 messages per connection, 6e6/minute);
``--shipped N`` adds a run of N messages with the limits as shipped, to show the cap.

The references, measured in the same run against the same sink
-------------------------------------------------------------------
(a) ``smtp-source -d -s C -m K -l L``: Postfix's C load generator, C sessions that each
    stay connected, L = the average size of the signed messages Postroom sent.
(b) a bare aiosmtplib loop on asyncio (the loop ``postroom serve`` uses): C connections,
    ``local_hostname`` set, 100 messages per connection (Postroom's
    ``messages_per_connection``), the same raw bytes re-sent, no DKIM, no database.

C defaults to 20: the MX engine sends a site's transactions over as many concurrent
connections (lanes) as the site allows, 20 here, so 20 sessions is the comparable shape;
``--ceiling-connections`` (default 1) adds both references on a single connection.
``ratio = Postroom deliveries/s ÷ reference msgs/s``: the share of the SMTP ceiling left
after queueing, signing, routing and bookkeeping.

Profile
-------
``--profile PATH`` repeats the main run under ``py-spy record --gil --threads
--nonblocking`` (raw stacks to PATH) and prints which threads and functions hold the GIL.

Install the Postfix tools (the MTA itself need not run)::

    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postfix
    postfix stop   # only if the package started a daemon

Usage (from the repository root)::

    .venv/bin/python bench/delivery.py                       # 5,000 messages
    .venv/bin/python bench/delivery.py --quick               # 1,000 messages, smoke test
    .venv/bin/python bench/delivery.py --profile /tmp/delivery-prof.txt --shipped 200

Everything listens on loopback, every wait has a timeout and every process the script
starts is stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]

from ingest import (  # noqa: E402
    PG_URL,
    PY_SPY_RATE,
    TOKEN_RE,
    Backend,
    Profile,
    console,
    cpu_seconds,
    free_port,
    gil_tables,
    machine,
    py_spy_path,
    send_body,
    stop_process,
    summarise_profile,
    wait_for_port,
)

from dnsserver import LocalDnsServer  # noqa: E402

SINK_HOST = "127.0.0.2"
SENDER_DOMAIN = "shop.example"
RCPT_DOMAIN = "dest.example"
ACCOUNT_RE = re.compile(r"Account (\d+),")
START_TIMEOUT = 60.0
DRAIN_TIMEOUT = 600.0
# dest.example is not in the built-in site table, so the fallback limits apply to it.
LIFT_THROTTLE = {
    "POSTROOM_DELIVERY__SITE_MAX_CONNECTIONS": "20",
    "POSTROOM_DELIVERY__SITE_MESSAGES_PER_CONNECTION": "100",
    "POSTROOM_DELIVERY__SITE_MESSAGES_PER_MINUTE": "6000000",
}
SHIPPED: dict[str, str] = {}


def need_postfix_tools() -> tuple[str, str]:
    found = [shutil.which(n) or f"/usr/sbin/{n}" for n in ("smtp-sink", "smtp-source")]
    missing = [p for p in found if not os.access(p, os.X_OK)]
    if missing:
        console.print(
            f"[red]{', '.join(Path(p).name for p in missing)} not found.[/red] Install "
            "Postfix's tools: apt-get update && DEBIAN_FRONTEND=noninteractive apt-get "
            "install -y postfix (then `postfix stop` if it started a daemon)."
        )
        sys.exit(2)
    return found[0], found[1]


def free_port_on(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def smtp_sink(exe: str) -> Iterator[int]:
    port = free_port_on(SINK_HOST)
    cmd = [exe, "-u", "nobody", f"{SINK_HOST}:{port}", "1024"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((SINK_HOST, port), 0.5):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"smtp-sink exited: {proc.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.poll() is None:
            proc.kill()


# -- Postroom ------------------------------------------------------------------------------


@dataclass(slots=True)
class Drain:
    label: str
    messages: int
    rate: float = 0.0  # deliveries/s from the first completed delivery to an empty queue
    rate_from_start: float = 0.0  # from the server process start
    seconds: float = 0.0
    states: dict[str, int] = field(default_factory=dict)
    cpu_us_per_delivery: float = 0.0
    avg_raw_bytes: int = 0  # stored (unsigned) message size
    signed_bytes: int = 0  # estimate: stored size + two DKIM-Signature headers
    load: str = ""  # the 1-minute load average before and after the drain (shared machine)
    profile: Profile | None = None


def message(i: int) -> dict[str, Any]:
    body = send_body()
    body.pop("cc")
    body["from"] = {"email": f"receipts@{SENDER_DOMAIN}", "name": "Example Shop"}
    body["reply_to"] = {"email": f"support@{SENDER_DOMAIN}", "name": "Example Shop Support"}
    body["to"] = [{"email": f"customer{i}@{RCPT_DOMAIN}", "name": f"Customer {i}"}]
    return body


@dataclass(frozen=True, slots=True)
class Layout:
    """How the drain runs: ``serve [--processes N]`` (every role in each process), or,
    with ``workers`` > 0, that many ``postroom worker`` processes and nothing else."""

    processes: int = 1
    workers: int = 0

    def label(self) -> str:
        if self.workers:
            return f"{self.workers} × postroom worker"
        return "serve" if self.processes == 1 else f"serve --processes {self.processes}"


class Server:
    """One Postroom process (``serve`` or a role) on the bench's storage."""

    def __init__(self, store: Backend, env: dict[str, str], dns: str, name: str) -> None:
        assert store.data_dir is not None
        self.store, self.env, self.dns, self.name = store, env, dns, name
        self.data_dir = store.data_dir
        self.port, self.bulk_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self, batch: int, command: str = "serve", processes: int = 1) -> str:
        args = [
            command, "--data-dir", str(self.data_dir), "--delivery-mode", "mx",
            "--dns-server", self.dns,
        ]  # fmt: skip
        listens = command == "serve"
        if listens:
            args += [
                "--port", str(self.port), "--bulk-port", str(self.bulk_port),
                "--inbound-port", str(free_port()),
                "--smtp-port", "0", "--smtp-bulk-port", "0", "--tracking-port", "0",
                # the SMTPS defaults (4650/4651) are fixed ports: another run on the
                # machine may hold them
                "--smtps-port", "0", "--smtps-bulk-port", "0",
            ]  # fmt: skip
        if (url := self.store.database_url()) is not None:
            args += ["--database-url", url]
        if processes > 1:
            args += ["--processes", str(processes)]
        env = {**os.environ, **self.env, "POSTROOM_DELIVERY__WORKER_BATCH": str(batch)}
        out = self.data_dir / f"{self.name}.out"
        with open(out, "wb") as fo, open(self.data_dir / f"{self.name}.err", "wb") as fe:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "postroom", *args], stdout=fo, stderr=fe, env=env,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        if not listens:
            return ""
        wait_for_port(self.port, self.proc, START_TIMEOUT)
        wait_for_port(self.bulk_port, self.proc, START_TIMEOUT)
        deadline = time.monotonic() + START_TIMEOUT
        text = out.read_text(errors="replace")
        while batch == 0 and not TOKEN_RE.search(text) and time.monotonic() < deadline:
            time.sleep(0.05)
            text = out.read_text(errors="replace")
        return text

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def scalar(store: Backend, sql: str) -> Any:
    """One value from the bench's storage (SQLite read-only, or the PostgreSQL schema)."""
    if store.name == "sqlite":
        assert store.data_dir is not None
        conn = sqlite3.connect(f"file:{store.data_dir / 'postroom.db'}?mode=ro", uri=True)
        try:
            return conn.execute(sql).fetchone()[0]
        finally:
            conn.close()
    with store._pg_connect() as conn:
        conn.execute(f'SET search_path TO "{store.schema}"')
        row = conn.execute(sql).fetchone()
        return None if row is None else row[0]


def counts(store: Backend) -> dict[str, int]:
    return store.counts()[2]


def setup_domain(client: httpx.Client, base: str, account: str, dns: LocalDnsServer) -> None:
    url = f"{base}/api/accounts/{account}/sending_domains"
    r = client.post(url, json={"sending_domain": {"domain_name": SENDER_DOMAIN}})
    r.raise_for_status()
    domain = r.json()
    for record in domain["dns_records"]:
        if record["type"] == "CNAME":
            dns.add_cname(record["domain"], record["value"])
        else:
            dns.add_txt(record["domain"], record["value"])
    r = client.post(f"{url}/{domain['id']}/verify")
    r.raise_for_status()
    if r.json().get("dns_verified") is not True:
        raise RuntimeError(f"{SENDER_DOMAIN} did not verify: {r.text[:500]}")


def enqueue(client: httpx.Client, base: str, total: int, chunk: int = 500) -> None:
    for start in range(0, total, chunk):
        reqs = [message(i) for i in range(start, min(total, start + chunk))]
        r = client.post(f"{base}/api/batch", json={"requests": reqs})
        r.raise_for_status()
        failed = [x for x in r.json().get("responses", []) if not x.get("success")]
        if failed:
            raise RuntimeError(f"/api/batch: {len(failed)} failed, e.g. {failed[0]}")


def drain(
    label: str, total: int, sink_port: int, batch: int, limits: dict[str, str], tmp: Path,
    profile: Path | None = None, backend: str = "sqlite", layout: Layout = Layout(),
    pg_url: str = PG_URL,
) -> Drain:  # fmt: skip
    result = Drain(label, total)
    store = Backend(backend, tmp, pg_url)
    store.data_dir = Path(tempfile.mkdtemp(prefix="delivery-", dir=tmp))
    store.create()
    try:
        with LocalDnsServer() as dns:
            dns.add_mx(RCPT_DOMAIN, 10, f"mx1.{RCPT_DOMAIN}")
            dns.add_a(f"mx1.{RCPT_DOMAIN}", SINK_HOST)
            env = {
                "POSTROOM_DELIVERY__PORT": str(sink_port),
                "POSTROOM_DELIVERY__POLL_INTERVAL": "0.05",
                # the API request limits are not what is measured here
                "POSTROOM_RATELIMITS__ENABLED": "false",
                **limits,
            }
            _fill(store, env, dns, total, result)
            _deliver(store, env, dns, total, batch, layout, result, profile)
    finally:
        store.drop()
    return result


def _fill(
    store: Backend, env: dict[str, str], dns: LocalDnsServer, total: int, result: Drain
) -> None:
    """Verify the sending domain and enqueue ``total`` messages with a worker that leases
    nothing, so delivery later starts on a full queue."""
    server = Server(store, env, dns.address, "fill")
    try:
        out = server.start(batch=0)
        token, account = TOKEN_RE.search(out), ACCOUNT_RE.search(out)
        if not token or not account:
            raise RuntimeError(f"no token/account in the welcome output:\n{out[-1500:]}")
        headers = {"Authorization": f"Bearer {token.group(0)}"}
        with httpx.Client(headers=headers, timeout=120, trust_env=False) as client:
            setup_domain(client, f"http://127.0.0.1:{server.port}", account.group(1), dns)
            enqueue(client, f"http://127.0.0.1:{server.bulk_port}", total)
    finally:
        server.stop()
    result.avg_raw_bytes = int(scalar(store, "SELECT avg(length(raw)) FROM message_bodies"))
    # two DKIM-Signature headers: RSA-2048 (~560 bytes folded) + Ed25519 (~300)
    result.signed_bytes = result.avg_raw_bytes + 860
    if counts(store).get("queued", 0) != total:
        raise RuntimeError(f"expected {total} queued deliveries, found {counts(store)}")


def _deliver(
    store: Backend, env: dict[str, str], dns: LocalDnsServer, total: int, batch: int,
    layout: Layout, result: Drain, profile: Path | None,
) -> None:  # fmt: skip
    """Start the drain's processes on the full queue and time it to an empty queue."""
    servers: list[Server] = []
    spy: subprocess.Popen[bytes] | None = None
    try:
        if layout.workers:
            for k in range(layout.workers):
                servers.append(Server(store, env, dns.address, f"worker{k}"))
                servers[-1].start(batch=batch, command="worker")
        else:
            servers.append(Server(store, env, dns.address, "drain"))
            servers[0].start(batch=batch, processes=layout.processes)
        procs = [s.proc for s in servers if s.proc is not None]
        load0 = os.getloadavg()[0]
        started = min(s.started for s in servers)
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        if profile is not None and (exe := py_spy_path()):
            spy = subprocess.Popen(
                [exe, "record", "--pid", str(procs[0].pid), "--rate", str(PY_SPY_RATE),
                 "--nonblocking", "--gil", "--threads", "--subprocesses", "--format", "raw",
                 "--output", str(profile)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        spy_start = time.perf_counter()
        first: tuple[float, int] | None = None
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while True:
            now = time.perf_counter()
            states = counts(store)
            done = total - states.get("queued", 0)
            if first is None and done > 0:
                first = (now, done)
            if done >= total:
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"the queue did not drain: {states}")
            time.sleep(0.05)
        cpu1 = sum(cpu_seconds(p.pid) for p in procs)
        assert first is not None
        result.seconds = now - first[0]
        result.rate_from_start = total / (now - started)
        # one round did everything: no interval to measure, fall back to "from start"
        result.rate = (
            (total - first[1]) / result.seconds if first[1] < total else result.rate_from_start
        )
        result.states = states
        result.load = f"{load0:.1f}→{os.getloadavg()[0]:.1f}"
        result.cpu_us_per_delivery = (cpu1 - cpu0) * 1e6 / total
        if spy is not None and profile is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            result.profile = summarise_profile(profile, time.perf_counter() - spy_start)
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        for server in servers:
            server.stop()


# -- references --------------------------------------------------------------------------


def smtp_source(exe: str, port: int, conns: int, total: int, size: int) -> float:
    sender, rcpt = f"bench@{SENDER_DOMAIN}", f"rcpt@{RCPT_DOMAIN}"
    cmd = [exe, "-d", "-s", str(conns), "-m", str(total), "-l", str(size), "-f", sender,
           "-t", rcpt, f"{SINK_HOST}:{port}"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, timeout=300, stdout=subprocess.DEVNULL)
    return total / (time.perf_counter() - t0)


def raw_message(size: int) -> bytes:
    head = (
        f"From: Example Shop <receipts@{SENDER_DOMAIN}>\r\nTo: <customer@{RCPT_DOMAIN}>\r\n"
        "Subject: Your receipt\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


async def _aiosmtplib(port: int, conns: int, total: int, raw: bytes, per_conn: int) -> float:
    import aiosmtplib

    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            smtp = aiosmtplib.SMTP(
                hostname=SINK_HOST, port=port, local_hostname="bench.postroom.test",
                start_tls=False, use_tls=False, timeout=30,
            )  # fmt: skip
            await smtp.connect()
            for _ in range(per_conn):
                if left <= 0:
                    break
                left -= 1
                await smtp.sendmail(f"bench@{SENDER_DOMAIN}", [f"rcpt@{RCPT_DOMAIN}"], raw)
            await smtp.quit()

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(conns))), 300)
    return total / (time.perf_counter() - t0)


def bare_aiosmtplib(port: int, conns: int, total: int, size: int) -> float:
    return asyncio.run(_aiosmtplib(port, conns, total, raw_message(size), 100))


# -- output ------------------------------------------------------------------------------


def profile_tables(prof: Profile, rate: float) -> list[Table]:
    return gil_tables(prof, f"a {rate:,.0f}/s drain")


def _counts(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"{flag}: a comma-separated list of numbers, not {text!r}") from None
    if any(v < 1 for v in values):
        raise SystemExit(f"{flag}: every count is at least 1")
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--messages", type=int, default=5000, help="messages to deliver")
    p.add_argument("--quick", action="store_true", help="1,000 messages (smoke test)")
    p.add_argument("--worker-batch", type=int, default=500, help="POSTROOM_DELIVERY__WORKER_BATCH")
    p.add_argument("--backend", choices=("auto", "sqlite", "postgres"), default="auto",
                   help="storage (auto: SQLite, or PostgreSQL when a run has several "
                   "processes)")  # fmt: skip
    p.add_argument("--pg-url", default=PG_URL, help="PostgreSQL URL (a schema is created)")
    p.add_argument("--processes", default="1", metavar="N[,N…]",
                   help="drain with `serve --processes N`, once per N (e.g. 1,2)")  # fmt: skip
    p.add_argument("--workers", default="", metavar="K[,K…]",
                   help="also drain with K `postroom worker` processes alone, once per K "
                   "(e.g. 1,2,3; PostgreSQL)")  # fmt: skip
    p.add_argument(
        "--connections",
        type=int,
        default=20,
        help="reference connections: Postroom's lanes to the site (its limit, 20)",
    )
    p.add_argument("--ceiling-connections", type=int, default=1,
                   help="a second reference shape, e.g. 1 connection (0 to skip)")  # fmt: skip
    p.add_argument("--shipped", type=int, default=0, metavar="N",
                   help="also deliver N messages with the site throttle as shipped")  # fmt: skip
    p.add_argument("--profile", type=Path, help="repeat the main run under py-spy (raw stacks)")
    p.add_argument("--json", type=Path, dest="json_out")
    args = p.parse_args(argv)
    total = 1000 if args.quick else args.messages
    processes = _counts(args.processes, "--processes")
    workers = _counts(args.workers, "--workers")
    several = max(processes) > 1 or bool(workers)
    backend = args.backend if args.backend != "auto" else ("postgres" if several else "sqlite")
    if several and backend == "sqlite":
        p.error("several serving processes need PostgreSQL (SQLite refuses them)")
    layouts = [Layout(processes=n) for n in processes] + [Layout(workers=k) for k in workers]
    sink_exe, source_exe = need_postfix_tools()
    info = machine()
    console.print(
        f"[bold]Delivery benchmark[/bold]: {info['cpus']} CPUs ({info['cpu']}), Python "
        f"{info['python']}; {total:,} messages, worker_batch {args.worker_batch}, DKIM "
        f"RSA-2048 + Ed25519, smtp-sink on 127.0.0.2, {backend}, load average "
        f"{os.getloadavg()[0]:.2f}",
        highlight=False,
    )
    refs: dict[str, float] = {}
    runs: list[Drain] = []
    with (
        tempfile.TemporaryDirectory(prefix="postroom-delivery-") as tmp,
        smtp_sink(sink_exe) as port,
    ):
        for layout in layouts:
            run = drain(f"Postroom, {layout.label()}", total, port, args.worker_batch,
                        LIFT_THROTTLE, Path(tmp), backend=backend, layout=layout,
                        pg_url=args.pg_url)  # fmt: skip
            runs.append(run)
            console.print(f"{run.label}: {run.rate:,.0f} deliveries/s (load {run.load})",
                          highlight=False)  # fmt: skip
        main_run = runs[0]
        size = main_run.signed_bytes
        shapes = [args.connections] + (
            [args.ceiling_connections]
            if args.ceiling_connections and args.ceiling_connections != args.connections
            else []
        )
        for conns in shapes:
            n = total if conns == args.connections else max(total, 20000)
            refs[f"smtp-source -d -s {conns}"] = smtp_source(source_exe, port, conns, n, size)
            refs[f"aiosmtplib x{conns}"] = bare_aiosmtplib(port, conns, min(n, total * 2), size)
        if args.shipped:
            runs.append(drain("Postroom (site limits as shipped)", args.shipped, port,
                              args.worker_batch, SHIPPED, Path(tmp), backend=backend,
                              pg_url=args.pg_url))  # fmt: skip
        prof_run = None
        if args.profile is not None:
            prof_run = drain("Postroom under py-spy", total, port, args.worker_batch,
                             LIFT_THROTTLE, Path(tmp), args.profile, backend=backend,
                             layout=layouts[0], pg_url=args.pg_url)  # fmt: skip
    c = args.connections
    src, aio = refs[f"smtp-source -d -s {c}"], refs[f"aiosmtplib x{c}"]
    table = Table(title=f"Deliveries/s to smtp-sink, ~{size:,}-byte signed messages, {backend}")
    for name in ("run", "messages", "deliveries/s", "from start", "server CPU µs/delivery",
                 f"÷ smtp-source ({c} conn)", f"÷ aiosmtplib ({c} conn)", "load avg",
                 "states"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("run", "states") else "right")
    for r in runs + ([prof_run] if prof_run else []):
        table.add_row(
            r.label, f"{r.messages:,}", f"[bold]{r.rate:,.0f}[/bold]", f"{r.rate_from_start:,.0f}",
            f"{r.cpu_us_per_delivery:,.0f}", f"{r.rate / src:.3f}", f"{r.rate / aio:.3f}",
            r.load, ", ".join(f"{k} {v:,}" for k, v in sorted(r.states.items())),
        )  # fmt: skip
    console.print(table)
    ref = Table(
        "reference (same sink, same run)",
        "msgs/s",
        "Postroom ÷ this",
        title=f"References, -l {size} / {size:,}-byte messages",
    )
    for name, rate in refs.items():
        ref.add_row(name, f"{rate:,.0f}", f"{main_run.rate / rate:.3f}")
    console.print(ref)
    console.print(
        f"ratio to smtp-source ({c} conn): [bold]{main_run.rate / src:.3f}[/bold]; ratio to "
        f"bare aiosmtplib ({c} conn): [bold]{main_run.rate / aio:.3f}[/bold]; goal 2,000/s: "
        f"{main_run.rate / 2000:.0%}",
        highlight=False,
    )
    if prof_run is not None and prof_run.profile is not None:
        for t in profile_tables(prof_run.profile, prof_run.rate):
            console.print(t)
    if args.json_out is not None:
        every = runs + ([prof_run] if prof_run else [])
        payload = {"machine": info, "refs": refs, "runs": [asdict(r) for r in every]}
        args.json_out.write_text(json.dumps(payload, indent=2, default=str))
    ok = all(r.states.get("delivered", 0) == r.messages for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
