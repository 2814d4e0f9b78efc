"""SMTP ingest benchmark (F7): messages per second accepted over SMTP submission.

What it measures
----------------
Postfix's ``smtp-source`` sends ``--messages`` messages of ``--size`` bytes over
``--sessions`` parallel SMTP sessions (each session sends message after message, ``-d``)
to a fresh ``postroom serve`` (SQLite with ``synchronous=FULL`` by default, or a local
PostgreSQL with ``--backend postgres``), in sandbox delivery mode, so the worker captures
the messages into the default inbox while the load runs, as it would on a laptop. A
``250`` from Postroom means the message, its body, its delivery row and its event were
committed, so the rate is a *durable* acceptance rate; afterwards the script checks that
the ``messages`` table holds at least every message smtp-source sent.

The reference, in the same run
------------------------------
The same smtp-source load goes, seconds earlier, to Postfix's ``smtp-sink``, which
accepts and discards (no parsing, no storage). ``ratio = Postroom msg/s / smtp-sink
msg/s``: the share of a C SMTP server's ceiling left once Postroom's Python SMTP stack
(aiosmtpd), message parsing, accept_message() and the durable group commit are paid for.

Authentication
--------------
smtp-source cannot AUTH, and Postroom never relays without it. Both targets are
therefore reached through the same small relay process (``shim`` mode of this script):
per client connection it opens one upstream connection, does EHLO and (for Postroom)
``AUTH PLAIN api <token>``, then greets the client and copies bytes both ways. Postroom
runs with ``submission.allow_plaintext_loopback`` so the AUTH happens without TLS: TLS
cost is left out of both sides. The shim's own CPU is paid in both runs.

Several processes
-----------------
``--processes N`` runs ``postroom serve --processes N`` (N children sharing the
listeners, each playing every role: SMTP, API, worker, scheduler); more than one needs
PostgreSQL (SQLite refuses several serving processes), so ``--backend`` then defaults to
it. The reference stays one smtp-sink: it is the ceiling of the load path, not of Postroom.
The machine may be shared: the script prints the load average before and after each run.

Usage::

    .venv/bin/python bench/smtp_ingest.py [--messages 4000] [--sessions 64] [--size 2000]
                                           [--backend sqlite|postgres] [--processes N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
HOST = "127.0.0.1"
TOKEN_RE = re.compile(r"pr_[0-9a-f]{40}")
PG_URL = os.environ.get("POSTROOM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                if sock.recv(3) == b"220":
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"nothing answers on port {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)


# --- the AUTH shim ------------------------------------------------------------------------


async def _reply(reader: asyncio.StreamReader) -> bytes:
    """One (possibly multi-line) SMTP reply."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("upstream closed")
        if line[3:4] != b"-":
            return line


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def shim(listen: int, upstream: int, token: str | None) -> None:
    auth = None
    if token:
        auth = b"AUTH PLAIN " + base64.b64encode(b"\0api\0" + token.encode()) + b"\r\n"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(HOST, upstream)
        await _reply(up_reader)  # banner
        up_writer.write(b"EHLO shim.bench\r\n")
        await _reply(up_reader)
        if auth is not None:
            up_writer.write(auth)
            reply = await _reply(up_reader)
            if not reply.startswith(b"235"):
                raise RuntimeError(f"AUTH refused: {reply!r}")
        writer.write(b"220 shim.bench ESMTP\r\n")
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, HOST, listen, backlog=1024)
    async with server:
        await server.serve_forever()


def start_shim(upstream: int, token: str | None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    args = [sys.executable, __file__, "shim", str(port), str(upstream), token or ""]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("shim did not start")


# --- the runs -----------------------------------------------------------------------------


@dataclass
class Result:
    target: str
    messages: int
    seconds: float
    load: str = ""  # the 1-minute load average before → after (a shared machine)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def drive(port: int, args: argparse.Namespace, target: str) -> Result:
    """Run smtp-source against ``port``; the wall time of the whole run is the measure."""
    command = [
        SMTP_SOURCE, "-s", str(args.sessions), "-m", str(args.messages), "-d",
        "-l", str(args.size), "-f", "app@example.com", "-t", "ann@example.org",
        "-S", "SMTP ingest bench", "-M", "client.bench", f"{HOST}:{port}",
    ]  # fmt: skip
    load0 = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source failed against {target}: {done.stderr[-2000:]}")
    return Result(target, args.messages, seconds, f"{load0:.1f}→{os.getloadavg()[0]:.1f}")


def run_sink(args: argparse.Namespace) -> Result:
    port = free_port()
    sink_args = [SMTP_SINK, "-u", "nobody"] if os.geteuid() == 0 else [SMTP_SINK]
    sink = subprocess.Popen([*sink_args, f"{HOST}:{port}", "1024"])
    try:
        wait_port(port, sink)
        proxy, proxy_port = start_shim(port, None)
        try:
            return drive(proxy_port, args, "smtp-sink")
        finally:
            stop(proxy)
    finally:
        stop(sink)


def run_postroom(args: argparse.Namespace, root: Path) -> tuple[Result, int]:
    data_dir = root / "postroom"
    database_url = None
    schema = None
    if args.backend == "postgres":
        schema = f"bench_{os.getpid()}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        sep = "&" if "?" in PG_URL else "?"
        database_url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    http, bulk, smtp = free_port(), free_port(), free_port()
    command = [
        sys.executable, "-m", "postroom", "serve", "--data-dir", str(data_dir),
        "--port", str(http), "--bulk-port", str(bulk), "--smtp-port", str(smtp),
        "--smtp-bulk-port", "0", "--smtps-port", "0", "--smtps-bulk-port", "0",
        "--tracking-port", "0",
    ]  # fmt: skip
    if database_url:
        command += ["--database-url", database_url]
    if args.processes > 1:
        command += ["--processes", str(args.processes)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env["POSTROOM_SUBMISSION__ALLOW_PLAINTEXT_LOOPBACK"] = "true"
    # Every session arrives from the shim on 127.0.0.1, one client address: the per-client
    # cap (50, a flood guard) would answer the sessions past it 421 in each process.
    env["POSTROOM_CONNECTIONS__SUBMISSION__MAX_PER_CLIENT"] = str(max(50, args.sessions + 8))
    out = root / "serve.out"
    with out.open("wb") as stdout:
        server = subprocess.Popen(command, stdout=stdout, stderr=subprocess.STDOUT, env=env)
    try:
        wait_port(smtp, server, timeout=60)
        token = None
        deadline = time.monotonic() + 30
        while token is None and time.monotonic() < deadline:
            match = TOKEN_RE.search(out.read_text(errors="replace"))
            token = match.group(0) if match else None
            time.sleep(0.1)
        if token is None:
            raise RuntimeError("no first-start token in the output:\n" + out.read_text())
        proxy, proxy_port = start_shim(smtp, token)
        try:
            label = f"postroom ({args.backend}, {args.processes} process"
            label += "es)" if args.processes > 1 else ")"
            result = drive(proxy_port, args, label)
        finally:
            stop(proxy)
        url = database_url or f"sqlite:///{data_dir / 'postroom.db'}"
        engine = create_engine(url)
        with engine.connect() as conn:
            stored = int(conn.execute(text("SELECT count(*) FROM messages")).scalar_one())
        engine.dispose()
        return result, stored
    finally:
        stop(server)
        if schema:
            with admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "shim":
        _, _, listen, upstream, token = sys.argv
        asyncio.run(shim(int(listen), int(upstream), token or None))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--size", type=int, default=2000, help="message body bytes")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default=None,
                        help="default: sqlite, or postgres with --processes > 1")  # fmt: skip
    parser.add_argument("--processes", type=int, default=1,
                        help="postroom serve --processes N (PostgreSQL)")  # fmt: skip
    args = parser.parse_args()
    if args.backend is None:
        args.backend = "postgres" if args.processes > 1 else "sqlite"
    if args.processes > 1 and args.backend == "sqlite":
        parser.error("several serving processes need PostgreSQL (SQLite refuses them)")
    for tool in (SMTP_SOURCE, SMTP_SINK):
        if not Path(tool).exists():
            sys.exit(f"{tool} is missing (Debian package postfix)")
    with tempfile.TemporaryDirectory(prefix="smtp-bench-") as tmp:
        sink = run_sink(args)
        postroom, stored = run_postroom(args, Path(tmp))
    print(f"{args.messages} messages of {args.size} bytes, {args.sessions} sessions, "
          f"smtp-source -d, through the AUTH shim")  # fmt: skip
    print("| target | messages | seconds | msg/s | load average |")
    print("|---|---:|---:|---:|---|")
    for r in (sink, postroom):
        print(f"| {r.target} | {r.messages} | {r.seconds:.2f} | {r.rate:.0f} | {r.load} |")
    print(f"\nratio postroom / smtp-sink: {postroom.rate / sink.rate:.3f}")
    print(f"durability: {stored} messages stored for {args.messages} sent")
    if stored < args.messages:
        sys.exit("FAIL: fewer messages stored than smtp-source sent")


if __name__ == "__main__":
    main()
