"""Ingest benchmark (F1): durable accepted messages per second over the HTTP API.

What it measures
----------------
For each database backend (SQLite with ``synchronous=FULL``, the default, and a local
PostgreSQL) and for two request shapes:

* **single**: ``POST /api/send`` with one ~6 KB Mailtrap-like JSON body (from, to, cc,
  reply_to, subject, text, a 5 KB html part, category, headers, custom_variables), sent to
  the transactional listener;
* **batch**: ``POST /api/batch`` carrying ``--batch-size`` (default 500) such messages,
  each complete (no ``base``), sent to the bulk listener;

it starts a fresh ``postroom serve`` (a new data directory, or a new PostgreSQL schema),
drives it at saturation with ``--concurrency`` keep-alive connections (default 64; batches
use ``--batch-concurrency``, default 4, since 64 × 500 messages in flight would not finish
inside a run) for ``--duration`` seconds after a warm-up, and reports accepted requests/s,
messages/s, p50/p99 latency and the server's CPU time per message. A 200 from Postroom
means the message, its body, one delivery row per recipient and one event per recipient
were committed (group commit) before the answer, so every figure is a *durable*
acceptance rate.

The server runs every role, as ``postroom serve`` does: both API listeners, the scheduler
and the sandbox delivery worker, which captures the accepted messages into the default
inbox while the load runs and competes for the same CPU and the same writer thread.
There is no flag to turn the worker off; the tables report how far it got.

The reference: a bare endpoint of the same framework
----------------------------------------------------
Just before each Postroom run, the same load is sent to a tiny FastAPI app served by
uvicorn with the settings ``postroom serve`` uses (httptools, no access log, no server
header, lifespan off, started with ``asyncio.run(server.serve())`` so it runs on the same
event loop implementation). Its route reads the whole body and answers a constant JSON.

How to read the ratio
---------------------
``ratio = Postroom req/s / bare req/s`` for the same request shape, measured seconds
apart on the same machine with the same load generator. It is the share of the
framework's own ceiling that is left once authentication, JSON parsing, contract
validation, MIME building, the durable group commit and the background worker are paid
for: 1.0 would mean they are free; 0.25 means they cost three times what HTTP and FastAPI
cost. The server-CPU columns (from /proc: µs per committed message for Postroom, µs per
request for the bare endpoint) give the same split in absolute terms. Everything (load
generator, server, database) shares the machine's cores, so the absolute rates are lower
than on a dedicated box while the ratio travels better.

Load generator
--------------
``wrk`` when it is installed (``apt-get install -y wrk``; one wrk thread, a Lua script
counts status codes), otherwise an asyncio + httpx client in this process (``pip install
httpx``). The httpx client costs far more CPU per request than wrk and takes it from the
same cores, so with it the bare endpoint is client-bound and ratios drift towards 1.
``--client`` forces one or the other.

Durability check
----------------
After each run the script counts the rows in ``messages`` and ``deliveries`` and checks
that they are at least the messages (and recipients) acknowledged with a 200, warm-up and
the sanity request included. More rows than answers is normal: requests in flight when
the load generator stopped were committed but never counted.

Other load on the machine
-------------------------
The machine may be shared (a test suite next door takes a core). Each row reports the
cores that unrelated processes used during its runs ("other load"); ``--wait-quiet S``
waits up to S seconds for them to go quiet before each measurement.

Usage (from the repository root)::

    .venv/bin/python bench/ingest.py                     # both backends, 64 conns, 10 s
    .venv/bin/python bench/ingest.py --backend sqlite --quick        # smoke test, ~30 s
    .venv/bin/python bench/ingest.py --profile /tmp/ingest-prof      # + a py-spy run
    .venv/bin/python bench/ingest.py --shape single --server-prelude "$(cat patch.py)"

``--profile`` repeats the single-send run under ``py-spy record --gil`` (``pip install
py-spy``) and prints which threads and functions hold the GIL. ``--server-prelude`` runs
Python code in the server before ``postroom serve`` starts (a monkeypatch), to estimate
what a change to ``src/`` would gain before making it. ``--server-loop`` picks the bare
reference server's event loop (uvloop by default, as ``postroom serve`` uses).
``--json`` writes every figure to a file.

Everything listens on 127.0.0.1 only, every wait has a timeout, and every process the
script starts is stopped (and the PostgreSQL schema dropped) on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

TOKEN_RE = re.compile(r"pr_[0-9a-f]{40}")
WRK_LINE = "WRKJSON "
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
REQUEST_TIMEOUT = 60.0
NOISY = 0.15  # cores of unrelated load above which a run is flagged
BARE_REPLY = b'{"success":true,"message_ids":["00000000-0000-0000-0000-000000000000"]}'

console = Console(width=None if sys.stdout.isatty() else 160)


# -- the request bodies ----------------------------------------------------------------


def send_body() -> dict[str, Any]:
    """A Mailtrap-like /api/send body of about 6 KB: a receipt with a 5 KB html part."""
    rows = "".join(
        f'<tr><td style="padding:4px 8px;border-bottom:1px solid #eee">Item {i:02d}: '
        f"Organic cotton T-shirt, size M, colour {('navy', 'sand', 'olive')[i % 3]}</td>"
        f'<td style="padding:4px 8px;text-align:right">€{19 + i}.90</td></tr>\n'
        for i in range(24)
    )
    html = (
        "<!doctype html><html><head><meta charset=utf-8><title>Your receipt</title></head>"
        '<body style="font-family:Helvetica,Arial,sans-serif;color:#222">\n'
        "<h1>Thank you for your order, Ada!</h1>\n<p>Order <b>#A-104-2231</b> is confirmed "
        "and will ship within two working days.</p>\n"
        f'<table style="border-collapse:collapse;width:100%">\n{rows}</table>\n'
        '<p>Questions? Reply to this email or visit <a href="https://shop.example.com/help">'
        "our help centre</a>.</p>\n</body></html>\n"
    )
    html = html + "<!-- " + "x" * max(0, 5120 - len(html) - 9) + " -->\n"
    text = (
        "Thank you for your order, Ada!\n\nOrder #A-104-2231 is confirmed and will ship "
        "within two working days.\n\n24 items, total €1,032.60.\n\nQuestions? Reply to this "
        "email or visit https://shop.example.com/help\n"
    )
    return {
        "from": {"email": "receipts@shop.example.com", "name": "Example Shop"},
        "to": [{"email": "ada.customer@example.org", "name": "Ada Customer"}],
        "cc": [{"email": "accounts@example.org", "name": "Accounts"}],
        "reply_to": {"email": "support@shop.example.com", "name": "Example Shop Support"},
        "subject": "Your receipt for order #A-104-2231",
        "text": text,
        "html": html,
        "category": "receipt",
        "headers": {"X-Order-Id": "A-104-2231", "X-Shop-Region": "eu-west"},
        "custom_variables": {"user_id": "45982", "order_id": "A-104-2231", "locale": "en"},
    }


def batch_body(size: int) -> dict[str, Any]:
    """A /api/batch body of ``size`` complete messages (each request its own recipients)."""
    requests = []
    for i in range(size):
        item = send_body()
        item["to"] = [{"email": f"customer{i}@example.org", "name": f"Customer {i}"}]
        requests.append(item)
    return {"requests": requests}


# -- results ---------------------------------------------------------------------------


@dataclass(slots=True)
class Load:
    """What one load run saw from the client side."""

    ok: int = 0  # 200 responses
    other: int = 0  # non-200 responses
    errors: int = 0  # connect/read/write errors and timeouts
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


@dataclass(slots=True)
class Run:
    """One measured configuration: Postroom and its paired bare run."""

    backend: str
    mode: str  # "single" | "batch"
    concurrency: int
    msgs_per_request: int
    load: Load
    bare: Load
    server_cpu_us_per_msg: float  # all threads, from the load's start until it settled
    bare_cpu_us_per_req: float
    db_cpu_us_per_msg: float  # PostgreSQL's processes over the same span (0 on SQLite)
    foreign_cores: float = 0.0  # other processes' CPU during the two measured runs
    rep: int = 1
    rep_msgs_per_s: list[float] = field(default_factory=list)  # every repetition's msgs/s
    rep_ratios: list[float] = field(default_factory=list)  # every repetition's paired ratio
    acknowledged_requests: int = 0  # 200s including warm-up and sanity requests
    acknowledged_messages: int = 0
    acknowledged_recipients: int = 0
    message_rows: int = 0
    delivery_rows: int = 0
    delivery_states: dict[str, int] = field(default_factory=dict)
    profile: Profile | None = None

    @property
    def durable(self) -> bool:
        return (
            self.message_rows >= self.acknowledged_messages
            and self.delivery_rows >= self.acknowledged_recipients
        )

    @property
    def ratio(self) -> float:
        """This run's paired ratio, or the median of the repetitions' paired ratios."""
        if self.rep_ratios:
            return sorted(self.rep_ratios)[len(self.rep_ratios) // 2]
        return self.load.rps / self.bare.rps if self.bare.rps else 0.0


# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout:.0f} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (the runner's clean shutdown), then SIGKILL if it does not go."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) and of its live children (the children
    of ``serve --processes N``), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) for child in _children(pid))


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _proc_cpu(names: tuple[str, ...]) -> float:
    """CPU seconds of every live process whose command name is in ``names``."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = stat.read_text()
            if text[text.index("(") + 1 : text.rindex(")")] in names:
                fields = text.rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class ForeignLoad:
    """CPU used during a run by processes that are not part of the measurement.

    Busy time of the whole machine (/proc/stat) minus this process, its children (wrk),
    the servers under test and PostgreSQL's processes. The machine is shared: a test
    suite running next to the benchmark shows up here, and the run should be repeated.
    """

    def __init__(self, pids: tuple[int, ...]) -> None:
        self.pids = pids
        self.start = self._sample()

    def _sample(self) -> tuple[float, float]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        me, kids = (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        ours = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
        ours += sum(cpu_seconds(pid) for pid in self.pids) + _proc_cpu(("postgres", "py-spy"))
        return busy, ours

    def cores(self, seconds: float) -> float:
        """Average number of cores the foreign processes kept busy."""
        busy, ours = self._sample()
        return max(0.0, (busy - self.start[0]) - (ours - self.start[1])) / max(seconds, 1e-9)


@dataclass(slots=True)
class Backend:
    """Where a Postroom instance keeps its data, and how the bench counts its rows."""

    name: str
    root: Path  # a directory for this run's data directories
    pg_url: str = PG_URL
    schema: str = ""
    data_dir: Path | None = None  # set when the server starts

    def database_url(self) -> str | None:
        if self.name == "sqlite":
            return None
        return f"{self.pg_url}?options=-csearch_path%3D{self.schema}"

    def _pg_connect(self) -> Any:
        import psycopg

        dsn = self.pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)

    def create(self) -> None:
        if self.name == "postgres":
            self.schema = f"bench_ingest_{uuid.uuid4().hex[:12]}"
            with self._pg_connect() as conn:
                conn.execute(f'CREATE SCHEMA "{self.schema}"')

    def drop(self) -> None:
        if self.name == "postgres" and self.schema:
            with self._pg_connect() as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            self.schema = ""

    def counts(self) -> tuple[int, int, dict[str, int]]:
        """Rows in messages and deliveries, and deliveries by state."""
        queries = (
            "SELECT count(*) FROM messages",
            "SELECT count(*) FROM deliveries",
            "SELECT state, count(*) FROM deliveries GROUP BY state",
        )
        if self.name == "sqlite":
            assert self.data_dir is not None
            path = self.data_dir / "postroom.db"
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                rows = [conn.execute(q).fetchall() for q in queries]
            finally:
                conn.close()
        else:
            with self._pg_connect() as conn:
                conn.execute(f'SET search_path TO "{self.schema}"')
                rows = [conn.execute(q).fetchall() for q in queries]
        return int(rows[0][0][0]), int(rows[1][0][0]), {str(s): int(n) for s, n in rows[2]}


@contextlib.contextmanager
def postroom_server(
    backend: Backend, loop: str, prelude: str = "", processes: int = 1
) -> Iterator[tuple[subprocess.Popen[bytes], str, int, int]]:
    """Start ``postroom serve`` on fresh storage; yields (process, token, port, bulk port)."""
    port, bulk_port = free_port(), free_port()
    data_dir = Path(tempfile.mkdtemp(prefix=f"{backend.name}-", dir=backend.root))
    backend.data_dir = data_dir
    backend.create()
    args = [
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--bulk-port",
        str(bulk_port),
        "--inbound-port",
        str(free_port()),
        # no SMTP listeners: this bench measures the HTTP API, and fixed ports would clash
        "--smtp-port",
        "0",
        "--smtp-bulk-port",
        "0",
        "--tracking-port",
        "0",
    ]
    if (url := backend.database_url()) is not None:
        args += ["--database-url", url]
    if processes > 1:
        args += ["--processes", str(processes)]
    if loop == "uvloop":  # an experiment: the same CLI with uvloop as the event loop
        prelude = f"import uvloop\nuvloop.install()\n{prelude}"
    if prelude:
        code = f"{prelude}\nfrom postroom.cli.main import main\nmain()\n"
        cmd = [sys.executable, "-c", code, *args]
    else:
        cmd = [sys.executable, "-m", "postroom", *args]
    out_path, err_path = data_dir / "serve.out", data_dir / "serve.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    try:
        token = ""
        deadline = time.monotonic() + START_TIMEOUT
        while not token and time.monotonic() < deadline and proc.poll() is None:
            match = TOKEN_RE.search(out_path.read_text(errors="replace"))
            token = match.group(0) if match else ""
            time.sleep(0.05)
        if not token:
            tail = err_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"postroom serve printed no token; stderr tail:\n{tail}")
        wait_for_port(port, proc, START_TIMEOUT)
        wait_for_port(bulk_port, proc, START_TIMEOUT)
        yield proc, token, port, bulk_port
    finally:
        stop_process(proc)
        backend.drop()


@contextlib.contextmanager
def bare_server(loop: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    cmd = [sys.executable, __file__, "--serve-bare", str(port), "--server-loop", loop]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, START_TIMEOUT)
        yield proc, port
    finally:
        stop_process(proc)


def serve_bare(port: int, loop: str) -> None:
    """The reference endpoint: FastAPI, read the body, answer a constant JSON."""
    import uvicorn

    app = FastAPI()

    async def sink(request: Request) -> Response:
        await request.body()
        return Response(BARE_REPLY, media_type="application/json; charset=utf-8")

    app.add_api_route("/api/send", sink, methods=["POST"])
    app.add_api_route("/api/batch", sink, methods=["POST"])
    # The same uvicorn settings as postroom.cli.runner._server, run the same way.
    config = uvicorn.Config(
        app,
        host=HOST,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    if loop == "uvloop":
        import uvloop

        uvloop.install()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve())


# -- load generators ---------------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
local f = assert(io.open("%(body)s", "rb"))
wrk.body = f:read("*a")
f:close()
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; other = 0; statuses = "" end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else
    other = other + 1
    if other <= 20 then statuses = statuses .. status .. "," end
  end
end
function done(summary, latency, requests)
  local t_ok, t_other, t_statuses = 0, 0, ""
  for _, t in ipairs(threads) do
    t_ok = t_ok + t:get("ok"); t_other = t_other + t:get("other")
    t_statuses = t_statuses .. t:get("statuses")
  end
  local e = summary.errors
  io.write(string.format(
    '%(marker)s{"ok":%%d,"other":%%d,"statuses":"%%s","errors":%%d,"duration_us":%%d,'
    .. '"p50_us":%%d,"p99_us":%%d,"max_us":%%d}\\n',
    t_ok, t_other, t_statuses, e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(slots=True)
class Target:
    url: str
    body: bytes
    token: str
    concurrency: int


async def _ticker(progress: Progress, task: Any, seconds: float, live: Load | None) -> None:
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        extra = f"{live.ok:,} ok" if live is not None else ""
        progress.update(task, completed=min(elapsed, seconds), stats=extra)
        await asyncio.sleep(0.2)
    progress.update(task, completed=seconds)


async def run_wrk(target: Target, seconds: float, progress: Progress, label: str) -> Load:
    with tempfile.TemporaryDirectory(prefix="ingest-wrk-") as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_bytes(target.body)
        script = Path(tmp) / "post.lua"
        script.write_text(
            WRK_SCRIPT % {"token": target.token, "body": body_path, "marker": WRK_LINE}
        )
        cmd = [
            "wrk", "-t1", f"-c{target.concurrency}", f"-d{max(1, round(seconds))}s",
            "--timeout", f"{REQUEST_TIMEOUT:.0f}s", "-s", str(script), target.url,
        ]  # fmt: skip
        task = progress.add_task(label, total=seconds, stats="")
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        ticker = asyncio.create_task(_ticker(progress, task, seconds, None))
        try:
            out, err = await asyncio.wait_for(proc.communicate(), seconds + REQUEST_TIMEOUT + 30)
        except TimeoutError:
            proc.kill()
            raise
        finally:
            ticker.cancel()
            progress.remove_task(task)
    lines = [ln for ln in out.decode().splitlines() if ln.startswith(WRK_LINE)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode()[-500:]}")
    data = json.loads(lines[-1][len(WRK_LINE) :])
    statuses = Counter(s for s in data["statuses"].split(",") if s)
    return Load(
        ok=data["ok"],
        other=data["other"],
        errors=data["errors"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
        max_ms=data["max_us"] / 1e3,
        statuses=dict(statuses),
    )


async def run_httpx(target: Target, seconds: float, progress: Progress, label: str) -> Load:
    """The fallback client: one httpx.AsyncClient (one keep-alive connection) per worker.

    One shared client with a 64-connection pool collapses here (about 70 req/s against
    the bare endpoint, from contention in the pool); a client per connection does not.
    """
    import httpx

    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {target.token}"}
    live = Load()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    # Clients are made before the clock starts: each builds an SSL context (~20 ms).
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT, trust_env=False)
        for _ in range(target.concurrency)
    ]
    task = progress.add_task(label, total=seconds, stats="")
    start = time.perf_counter()
    deadline = start + seconds
    last = start

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal last
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                response = await client.post(target.url, content=target.body, headers=headers)
            except httpx.HTTPError:
                live.errors += 1
                continue
            last = time.perf_counter()
            latencies.append(last - t0)
            if response.status_code == 200:
                live.ok += 1
            else:
                live.other += 1
                statuses[str(response.status_code)] += 1

    ticker = asyncio.create_task(_ticker(progress, task, seconds, live))
    try:
        await asyncio.wait_for(
            asyncio.gather(*(worker(client) for client in clients)),
            seconds + REQUEST_TIMEOUT + 30,
        )
    finally:
        ticker.cancel()
        progress.remove_task(task)
        for client in clients:
            await client.aclose()
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3 if latencies else 0

    live.seconds = last - start
    live.p50_ms, live.p99_ms, live.max_ms = pct(0.50), pct(0.99), pct(1.0)
    live.statuses = dict(statuses)
    return live


async def drive(
    target: Target, seconds: float, client: str, progress: Progress, label: str
) -> Load:
    runner = run_wrk if client == "wrk" else run_httpx
    return await runner(target, seconds, progress, label)


def sanity_request(target: Target) -> list[Any]:
    """One request before the load: it must succeed; returns its per-message results."""
    import httpx

    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {target.token}"}
    response = httpx.post(target.url, content=target.body, headers=headers, timeout=REQUEST_TIMEOUT)
    if response.status_code != 200:
        raise RuntimeError(f"sanity request: {response.status_code} {response.text[:500]}")
    body = response.json()
    items = body.get("responses", [body])
    failed = [item for item in items if not item.get("success")]
    if failed:
        raise RuntimeError(f"sanity request: {len(failed)} items failed, e.g. {failed[0]}")
    return [item["message_ids"] for item in items]


# -- profiling ---------------------------------------------------------------------------


def py_spy_path() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


@dataclass(slots=True)
class Profile:
    """py-spy ``--gil --threads`` samples, reduced: who holds the GIL, doing what."""

    samples: int = 0
    seconds: float = 0.0
    threads: list[tuple[str, float]] = field(default_factory=list)  # (thread, % of samples)
    own: list[tuple[str, float]] = field(default_factory=list)  # self time, % of samples
    postroom: list[tuple[str, float]] = field(default_factory=list)  # inclusive, postroom code


def summarise_profile(raw: Path, seconds: float, top: int = 20) -> Profile:
    """Aggregate py-spy's raw (collapsed) stacks: threads, self time, postroom inclusive.

    With ``--gil`` only the thread holding the GIL is sampled, so percentages are shares of
    the GIL-held time and ``samples / (rate × seconds)`` is how busy the GIL was.
    """
    threads: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        first, *rest = stack.split(";")
        if first.startswith("process ") and rest:  # py-spy --subprocesses: drop the process
            first, *rest = rest
        if not first.startswith("thread ("):  # a frame name held a line break: skip it
            continue
        count = int(count_text)
        total += count
        threads[_thread_name(first)] += count
        frames = [_short(frame) for frame in rest] or [_thread_name(first)]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    if not total:
        return Profile()

    def pct(counter: Counter[str], names: list[str]) -> list[tuple[str, float]]:
        return [(name, 100 * counter[name] / total) for name in names]

    ours = [name for name, _ in inclusive.most_common() if "(postroom/" in name]
    return Profile(
        samples=total,
        seconds=seconds,
        threads=pct(threads, [name for name, _ in threads.most_common()]),
        own=pct(own, [name for name, _ in own.most_common(top)]),
        postroom=pct(inclusive, ours[:top]),
    )


def _thread_name(frame: str) -> str:
    """'thread (0x7f..): asyncio_3' -> 'asyncio_* (to_thread pool)'."""
    match = re.match(r"thread \((\w+)\)(?::\s*(.*))?$", frame)
    if match is None:
        return frame
    name = match.group(2) or f"thread {match.group(1)}"
    if re.fullmatch(r"asyncio_\d+", name):
        return "asyncio_* (to_thread pool)"
    return name


def _short(frame: str) -> str:
    """'func (path/to/site-packages/pkg/mod.py:12)' -> 'func (pkg/mod.py)'."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    func, path = match.groups()
    for marker in ("site-packages/", "/src/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3.":
                path = "stdlib/" + path.split("/", 1)[-1]
            break
    return f"{func} ({path})"


# -- the benchmark ---------------------------------------------------------------------


@dataclass(slots=True)
class Options:
    backends: list[str]
    shapes: list[str]
    duration: float
    warmup: float
    concurrency: int
    batch_concurrency: int
    batch_size: int
    client: str
    server_loop: str
    server_prelude: str
    pg_url: str
    processes: int
    profile: Path | None
    profile_shape: str
    json_out: Path | None
    wait_quiet: float
    repeat: int


def settle(backend: Backend, timeout: float = 30.0) -> None:
    """Wait until ``messages`` stops growing: requests the load generator abandoned at its
    deadline are still being accepted, and must not leak into the next measurement."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        rows = backend.counts()[0]
        if rows == last:
            return
        last = rows
        time.sleep(0.3)


def wait_quiet(max_wait: float, progress: Progress) -> float:
    """Wait (at most ``max_wait`` s) for unrelated load to drop under NOISY cores."""
    if max_wait <= 0:
        return 0.0
    task = progress.add_task("waiting for a quiet machine", total=max_wait, stats="")
    deadline = time.monotonic() + max_wait
    try:
        while True:
            probe = ForeignLoad(())
            time.sleep(2.0)
            cores = probe.cores(2.0)
            left = deadline - time.monotonic()
            progress.update(task, completed=max_wait - left, stats=f"other load {cores:.2f}")
            if cores < NOISY or left <= 0:
                return cores
    finally:
        progress.remove_task(task)


def measure(
    opts: Options,
    backend_name: str,
    mode: str,
    bare_port: int,
    bare_pid: int,
    workdir: Path,
    progress: Progress,
    profile_to: Path | None = None,
) -> Run:
    """One paired measurement: the bare endpoint, then a fresh Postroom, same load."""
    single = mode == "single"
    body = send_body() if single else batch_body(opts.batch_size)
    body_bytes = json.dumps(body, ensure_ascii=False).encode()
    concurrency = opts.concurrency if single else opts.batch_concurrency
    path = "/api/send" if single else "/api/batch"
    label = f"{backend_name} {mode}"

    bare_target = Target(f"http://{HOST}:{bare_port}{path}", body_bytes, "none", concurrency)
    wait_quiet(opts.wait_quiet, progress)
    asyncio.run(drive(bare_target, opts.warmup, opts.client, progress, f"bare {mode} warm-up"))
    time.sleep(0.5)
    cpu0, foreign = cpu_seconds(bare_pid), ForeignLoad((bare_pid,))
    bare = asyncio.run(drive(bare_target, opts.duration, opts.client, progress, f"bare {mode}"))
    bare_cpu = cpu_seconds(bare_pid) - cpu0
    foreign_cores = foreign.cores(bare.seconds)

    backend = Backend(backend_name, workdir, pg_url=opts.pg_url)
    with postroom_server(backend, opts.server_loop, opts.server_prelude, opts.processes) as server:
        proc, token, port, bulk_port = server
        url = f"http://{HOST}:{port if single else bulk_port}{path}"
        target = Target(url, body_bytes, token, concurrency)
        ids = sanity_request(target)
        msgs_per_request = len(ids)
        recipients_per_request = sum(len(item) for item in ids)
        warm = asyncio.run(drive(target, opts.warmup, opts.client, progress, f"{label} warm-up"))
        settle(backend)
        rows0 = backend.counts()[0]
        spy = start_py_spy(proc.pid, opts.duration, profile_to) if profile_to else None
        cpu0, foreign = cpu_seconds(proc.pid), ForeignLoad((proc.pid, bare_pid))
        db0 = _proc_cpu(("postgres",))
        load = asyncio.run(drive(target, opts.duration, opts.client, progress, label))
        foreign_cores = max(foreign_cores, foreign.cores(load.seconds))
        if spy is not None:
            spy.wait(timeout=opts.duration + 60)
        settle(backend)
        server_cpu = cpu_seconds(proc.pid) - cpu0
        db_cpu = _proc_cpu(("postgres",)) - db0 if backend_name == "postgres" else 0.0
        acknowledged = 1 + warm.ok + load.ok
        message_rows, delivery_rows, states = backend.counts()
    run = Run(
        backend=backend_name,
        mode=mode,
        concurrency=concurrency,
        msgs_per_request=msgs_per_request,
        load=load,
        bare=bare,
        server_cpu_us_per_msg=1e6 * server_cpu / max(1, message_rows - rows0),
        bare_cpu_us_per_req=1e6 * bare_cpu / max(1, bare.ok + bare.other),
        db_cpu_us_per_msg=1e6 * db_cpu / max(1, message_rows - rows0),
        foreign_cores=foreign_cores,
        acknowledged_requests=acknowledged,
        acknowledged_messages=acknowledged * msgs_per_request,
        acknowledged_recipients=acknowledged * recipients_per_request,
        message_rows=message_rows,
        delivery_rows=delivery_rows,
        delivery_states=states,
    )
    if profile_to is not None and profile_to.exists():
        run.profile = summarise_profile(profile_to, opts.duration)
    return run


PY_SPY_RATE = 100


def start_py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Sample the server's GIL holder for ``seconds`` (py-spy record, raw stacks)."""
    exe = py_spy_path()
    if exe is None:
        console.print("[yellow]py-spy not found (pip install py-spy); no profile taken[/yellow]")
        return None
    cmd = [
        exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--rate", str(PY_SPY_RATE), "--nonblocking", "--gil", "--threads",
        "--format", "raw", "--output", str(out),
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def median_run(reps: list[Run]) -> Run:
    """The repetition with the median msgs/s, carrying every repetition's rate and ratio."""
    rates = [r.load.rps * r.msgs_per_request for r in reps]
    ratios = [r.load.rps / r.bare.rps if r.bare.rps else 0.0 for r in reps]
    middle = sorted(reps, key=lambda r: r.load.rps)[len(reps) // 2]
    middle.rep_msgs_per_s, middle.rep_ratios = rates, ratios
    return middle


def _rate(value: float) -> str:
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def results_table(runs: list[Run], opts: Options) -> Table:
    reps = f", median of {opts.repeat} (min–max)" if opts.repeat > 1 else ""
    table = Table(title=f"Ingest: {opts.duration:g} s per run{reps}, client {opts.client}")
    for name in (
        "backend", "shape", "conns", "req/s", "msgs/s", "p50 ms", "p99 ms", "non-200",
        "bare req/s", "bare p99 ms", "ratio", "CPU µs/msg", "PG CPU µs/msg", "bare CPU µs/req",
        "other load",
    ):  # fmt: skip
        table.add_column(name, justify="left" if name in ("backend", "shape") else "right")
    for r in runs:
        shape = "single" if r.mode == "single" else f"batch×{r.msgs_per_request}"
        table.add_row(
            r.backend,
            shape,
            str(r.concurrency),
            _rate(r.load.rps),
            _rate(r.load.rps * r.msgs_per_request)
            + (
                f" ({_rate(min(r.rep_msgs_per_s))}–{_rate(max(r.rep_msgs_per_s))})"
                if len(r.rep_msgs_per_s) > 1
                else ""
            ),
            f"{r.load.p50_ms:,.1f}",
            f"{r.load.p99_ms:,.1f}",
            f"{r.load.other + r.load.errors}",
            _rate(r.bare.rps),
            f"{r.bare.p99_ms:,.1f}",
            f"{r.ratio:.2f}",
            f"{r.server_cpu_us_per_msg:,.0f}",
            f"{r.db_cpu_us_per_msg:,.0f}",
            f"{r.bare_cpu_us_per_req:,.0f}",
            f"[red]{r.foreign_cores:.2f}[/red]"
            if r.foreign_cores > NOISY
            else f"{r.foreign_cores:.2f}",
        )
    table.caption = (
        "ratio = req/s ÷ bare req/s (median of the paired ratios). CPU µs/msg: server "
        "process CPU (all threads, worker included) per message committed, from the start "
        "of the run until it settled. PG CPU µs/msg: PostgreSQL's processes over the same "
        "span (its share of a 2-core machine is not the server's to use). "
        "other load: cores used by unrelated processes during the runs (red above "
        f"{NOISY}: the machine was shared, repeat the run)."
    )
    return table


def durability_table(runs: list[Run]) -> Table:
    table = Table(title="Durability: rows after the run vs acknowledged (warm-up included)")
    for name in (
        "backend", "shape", "rep", "200s", "msgs acked", "messages rows", "recipients acked",
        "deliveries rows", "ok", "delivered by worker", "still queued",
    ):  # fmt: skip
        table.add_column(name, justify="left" if name in ("backend", "shape", "ok") else "right")
    for r in runs:
        table.add_row(
            r.backend,
            r.mode,
            str(r.rep) if r.rep else "py-spy",
            f"{r.acknowledged_requests:,}",
            f"{r.acknowledged_messages:,}",
            f"{r.message_rows:,}",
            f"{r.acknowledged_recipients:,}",
            f"{r.delivery_rows:,}",
            "[green]yes[/green]" if r.durable else "[red]NO[/red]",
            f"{r.delivery_states.get('delivered', 0):,}",
            f"{r.delivery_states.get('queued', 0):,}",
        )
    return table


def profile_tables(run: Run) -> list[Table]:
    prof = run.profile
    if prof is None or not prof.samples:
        return []
    what = f"{run.backend} single sends at {run.load.rps:,.0f} req/s"
    return gil_tables(prof, what)


def gil_tables(prof: Profile, what: str) -> list[Table]:
    """The three py-spy ``--gil`` tables: threads, self time, Postroom code inclusive."""
    busy = 100 * prof.samples / (PY_SPY_RATE * prof.seconds) if prof.seconds else 0
    title = f"py-spy --gil: {what}; GIL held {busy:.0f}% of the time ({prof.samples:,} samples)"
    threads = Table("thread", "% of GIL samples", title=title)
    for name, share in prof.threads:
        threads.add_row(name, f"{share:.1f}")
    own = Table("function (self time)", "%", title="Where the GIL time is spent (self)")
    for name, share in prof.own:
        own.add_row(name, f"{share:.1f}")
    ours = Table("postroom function (inclusive)", "%", title="Postroom code (inclusive)")
    for name, share in prof.postroom:
        ours.add_row(name, f"{share:.1f}")
    return [threads, own, ours]


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Options]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--shape", choices=("single", "batch", "both"), default="both")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per run")
    p.add_argument("--concurrency", type=int, default=64, help="connections (single sends)")
    p.add_argument(
        "--batch-concurrency",
        type=int,
        default=4,
        help="connections for /api/batch (default 4: with 64 × 500 messages in flight "
        "no batch would finish inside a 10 s run)",
    )
    p.add_argument("--batch-size", type=int, default=500, help="messages per /api/batch")
    p.add_argument("--repeat", type=int, default=1, help="repetitions; the median is shown")
    p.add_argument("--quick", action="store_true", help="2 s runs, 1 s warm-up (smoke test)")
    p.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    p.add_argument(
        "--server-loop",
        choices=("asyncio", "uvloop"),
        default="uvloop",
        help="event loop of the bare reference server (and of postroom, which runs uvloop "
        "itself when installed); keep both alike so the ratio compares like with like",
    )
    p.add_argument(
        "--server-prelude",
        default="",
        metavar="CODE",
        help="experiments only: Python run in the Postroom server before `serve` starts "
        "(e.g. a monkeypatch, to estimate a change's gain without editing src)",
    )
    p.add_argument("--pg-url", default=PG_URL, help="PostgreSQL URL (a schema is created)")
    p.add_argument("--profile", type=Path, help="also run single sends under py-spy; raw "
                   "stacks to PATH.<backend>.txt")  # fmt: skip
    p.add_argument("--profile-shape", choices=("single", "batch"), default="single",
                   help="the shape --profile runs under py-spy")  # fmt: skip
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measurement, wait up to SECONDS for other processes to go quiet",
    )
    p.add_argument("--json", type=Path, dest="json_out", help="write the results as JSON")
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="postroom serve --processes N (PostgreSQL only; the bare reference stays one)",
    )
    p.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "httpx"
    elif client == "wrk" and not shutil.which("wrk"):
        p.error("wrk is not installed (apt-get install -y wrk)")
    opts = Options(
        backends=["sqlite", "postgres"] if args.backend == "both" else [args.backend],
        shapes=["single", "batch"] if args.shape == "both" else [args.shape],
        duration=2.0 if args.quick else args.duration,
        warmup=1.0 if args.quick else args.warmup,
        concurrency=args.concurrency,
        batch_concurrency=args.batch_concurrency,
        batch_size=args.batch_size,
        client=client,
        server_loop=args.server_loop,
        server_prelude=args.server_prelude,
        pg_url=args.pg_url,
        processes=args.processes,
        profile=args.profile,
        profile_shape=args.profile_shape,
        json_out=args.json_out,
        wait_quiet=args.wait_quiet,
        repeat=max(1, args.repeat),
    )
    return args, opts


def main(argv: list[str] | None = None) -> int:
    args, opts = parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare, opts.server_loop)
        return 0
    info = machine()
    console.print(
        f"[bold]Ingest benchmark[/bold]: {info['cpus']} CPUs ({info['cpu']}), Python "
        f"{info['python']}, client {opts.client}, server loop {opts.server_loop}, "
        f"{opts.concurrency} conns (single) / {opts.batch_concurrency} conns × "
        f"{opts.batch_size} msgs (batch), {opts.warmup:g} s warm-up + {opts.duration:g} s",
        highlight=False,
    )
    if opts.client == "httpx":
        console.print(
            "[yellow]Load from the httpx client, which competes for the same cores and "
            "makes the bare endpoint client-bound (apt-get install -y wrk)[/yellow]"
        )
    runs: list[Run] = []  # one per backend and shape: the median repetition
    every: list[Run] = []  # every repetition, for the durability table
    profiled: list[Run] = []
    columns = (
        TextColumn("{task.description:<24}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[stats]}"),
    )
    with (
        tempfile.TemporaryDirectory(prefix="postroom-ingest-") as tmp,
        Progress(*columns, console=console, transient=True) as progress,
        bare_server(opts.server_loop) as (bare_proc, bare_port),
    ):
        for backend in opts.backends:
            for mode in opts.shapes:
                reps: list[Run] = []
                for rep in range(1, opts.repeat + 1):
                    run = measure(
                        opts, backend, mode, bare_port, bare_proc.pid, Path(tmp), progress
                    )
                    run.rep = rep
                    reps.append(run)
                    every.append(run)
                    progress.console.print(
                        f"{backend} {mode} #{rep}: {run.load.rps:,.1f} req/s "
                        f"({run.load.rps * run.msgs_per_request:,.0f} msgs/s), p99 "
                        f"{run.load.p99_ms:,.1f} ms; bare {run.bare.rps:,.0f} req/s; other load "
                        f"{run.foreign_cores:.2f}; durable {'yes' if run.durable else 'NO'}",
                        highlight=False,
                    )
                runs.append(median_run(reps))
            if opts.profile is not None:
                shape = opts.profile_shape
                out = opts.profile.with_name(f"{opts.profile.name}.{backend}.{shape}.txt")
                run = measure(
                    opts, backend, shape, bare_port, bare_proc.pid, Path(tmp), progress, out
                )
                run.rep = 0
                profiled.append(run)
                progress.console.print(
                    f"{backend} {shape} under py-spy: {run.load.rps:,.1f} req/s; stacks in {out}",
                    highlight=False,
                )
    console.print(results_table(runs, opts))
    console.print(durability_table(every + profiled))
    for run in profiled:
        for table in profile_tables(run):
            console.print(table)
    if opts.json_out is not None:
        payload = {
            "machine": info,
            "options": {k: str(v) for k, v in asdict(opts).items()},
            "runs": [
                {**asdict(r), "ratio": r.ratio, "durable": r.durable, "rps": r.load.rps}
                for r in every + profiled
            ],
        }
        opts.json_out.write_text(json.dumps(payload, indent=2, default=str))
    return 0 if all(r.durable for r in every + profiled) else 1


if __name__ == "__main__":
    sys.exit(main())
