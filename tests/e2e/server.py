"""Run ``postroom`` as a real subprocess for the end-to-end tests.

Small, typed helpers: pick free ports, start ``postroom serve``, wait until both
listeners answer, stop it (SIGTERM, then SIGKILL) or kill it outright, and run the
local CLI commands against the same data directory. Output goes to files, never to
pipes, so a chatty server cannot block on a full pipe and a failure can show it all.
"""

from __future__ import annotations

import http.client
import itertools
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

HOST = "127.0.0.1"
TOKEN_RE = re.compile(r"pr_[0-9a-f]{40}")
START_TIMEOUT = 30.0
_starts = itertools.count(1)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that are free on the loopback address right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _answers(port: int, tls: bool) -> bool:
    """Whether an HTTP(S) request to ``port`` gets any answer at all.

    A bare TCP connect is not enough: ``postroom serve`` binds its sockets before it
    migrates and prints, and the kernel accepts into the backlog meanwhile. (A loopback
    connect can also succeed with nobody listening, when the kernel picks the target port
    as the ephemeral source: TCP simultaneous open.) The probe only checks liveness, so
    it does not verify the certificate.
    """
    connection: http.client.HTTPConnection
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(HOST, port, timeout=2, context=context)
    else:
        connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", "/api/accounts")
        connection.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a ``postroom`` subprocess: ours, minus stray POSTROOM_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env["PYTHONUNBUFFERED"] = "1"
    # Tests make bursts of management calls that the contract's per-account limits (10
    # stats or suppressions requests a minute) would refuse; the limits have their own
    # tests (tests/integration/test_rate_limits.py).
    env["POSTROOM_RATELIMITS__ENABLED"] = "false"
    # Reading a sandbox message would make the server ask the system's resolver about
    # public DNS blocklists; the sandbox SDK tests point it at a loopback name server.
    env["POSTROOM_SANDBOX__BLACKLIST_CHECKS"] = "false"
    env.update(extra or {})
    return env


def storage_args(data_dir: Path, database_url: str | None) -> list[str]:
    args = ["--data-dir", str(data_dir)]
    return [*args, "--database-url", database_url] if database_url else args


def run_cli(
    *args: str,
    data_dir: Path,
    database_url: str | None = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> str:
    """Run a local ``postroom`` command on the instance's storage; returns its stdout.
    ``env`` adds variables (e.g. ``POSTROOM_PASSWORD`` for ``user create``)."""
    command = [sys.executable, "-m", "postroom", *args, *storage_args(data_dir, database_url)]
    done = subprocess.run(
        command, env=cli_env(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


@dataclass
class Server:
    """One running (or finished) ``postroom serve`` process."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    port: int
    bulk_port: int
    tls: bool
    stdout_path: Path
    stderr_path: Path
    database_url: str | None = None
    # SMTP submission: STARTTLS transactional, STARTTLS bulk, implicit TLS (with tls).
    smtp_ports: tuple[int, int, int] = (0, 0, 0)
    tracking_port: int = 0
    inbound_port: int = 0

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def output(self) -> str:
        return f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"

    def url(self, *, bulk: bool = False) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{HOST}:{self.bulk_port if bulk else self.port}"

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def first_start_token(self) -> str | None:
        match = TOKEN_RE.search(self.stdout)
        return match.group(0) if match else None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until both listeners answer HTTP; fail with the output if the process died."""
        deadline = time.monotonic() + timeout
        pending = [self.port, self.bulk_port]
        while pending:
            if not self.running:
                raise RuntimeError(
                    f"postroom serve exited with {self.proc.returncode} before listening\n"
                    + self.output()
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"postroom serve not listening after {timeout} s\n" + self.output()
                )
            if _answers(pending[0], self.tls):
                pending.pop(0)
            else:
                time.sleep(0.05)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, wait, SIGKILL if it hangs; returns the exit code (negative: signal)."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=timeout)
        return code

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash or an OOM kill."""
        if self.running:
            self.proc.kill()
        self.proc.wait(timeout=20)


def start_server(
    data_dir: Path,
    *,
    tls: tuple[Path, Path] | None = None,
    database_url: str | None = None,
    ports: tuple[int, int] | None = None,
    env: dict[str, str] | None = None,
    wait: bool = True,
    open_files: tuple[int, int] | None = None,
    args: tuple[str, ...] = (),
) -> Server:
    """Start ``postroom serve`` on free (or given) ports and wait until it listens.

    ``open_files`` (soft, hard) starts it under that RLIMIT_NOFILE (util-linux prlimit);
    ``args`` are further options of ``serve``.
    """
    port, bulk_port = ports or free_ports(2)
    smtp, smtp_bulk, smtps, tracking_port, inbound = free_ports(5)
    logs = data_dir.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    n = next(_starts)
    stdout_path, stderr_path = logs / f"serve-{n}.out", logs / f"serve-{n}.err"
    limit = ["prlimit", f"--nofile={open_files[0]}:{open_files[1]}", "--"] if open_files else []
    command = [
        *limit,
        sys.executable,
        "-m",
        "postroom",
        "serve",
        *storage_args(data_dir, database_url),
        "--port",
        str(port),
        "--bulk-port",
        str(bulk_port),
        # The inbound (bounce) and tracking listeners too: never their fixed default
        # ports in tests.
        "--inbound-port",
        str(inbound),
        "--tracking-port",
        str(tracking_port),
        "--smtp-port",
        str(smtp),
        "--smtp-bulk-port",
        str(smtp_bulk),
        "--smtps-port",
        str(smtps if tls else 0),
        "--smtps-bulk-port",
        "0",
    ]
    if tls:
        command += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    command += args  # e.g. ("--processes", "2")
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=cli_env(env)
        )
    server = Server(
        proc,
        data_dir,
        port,
        bulk_port,
        tls is not None,
        stdout_path,
        stderr_path,
        database_url,
        (smtp, smtp_bulk, smtps if tls else 0),
        tracking_port,
        inbound,
    )
    if wait:
        try:
            server.wait_ready()
        except BaseException:
            server.kill9()
            raise
    return server


class Store:
    """Read-only look into a server's database from the test process (SELECTs only).

    SQLite is opened with ``mode=ro``; the file is in WAL mode, so reading while the
    server writes is safe and sees every committed transaction.
    """

    def __init__(self, data_dir: Path, database_url: str | None = None) -> None:
        if database_url is None:
            database_url = f"sqlite:///file:{data_dir / 'postroom.db'}?mode=ro&uri=true"
        self.engine = create_engine(database_url)

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def close(self) -> None:
        self.engine.dispose()


@dataclass(frozen=True)
class TlsFiles:
    ca_pem: Path
    cert_chain_pem: Path
    key_pem: Path


@dataclass(frozen=True)
class Instance:
    """A running server and what a client needs to talk to it."""

    server: Server
    token: str
    account_id: int
    inbox_id: int
    tls: TlsFiles
    store: Store

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def bulk_host(self) -> str:
        return f"127.0.0.1:{self.server.bulk_port}"

    def http(self) -> httpx.Client:
        """An httpx client for the management API, trusting the private CA."""
        return httpx.Client(
            base_url=self.server.url(),
            verify=ssl.create_default_context(cafile=str(self.tls.ca_pem)),
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )


def printed_commands(stdout: str, start: str) -> list[str]:
    """Every command the server printed that starts with ``start``, with its ``\\``
    continuation lines, exactly as a user would copy it."""
    lines = [line.rstrip() for line in stdout.splitlines()]
    found = []
    for i, line in enumerate(lines):
        if line.startswith(start):
            end = i
            while lines[end].endswith("\\"):
                end += 1
            found.append("\n".join(lines[i : end + 1]))
    return found


def printed_python(stdout: str) -> str:
    """The printed Python snippet: from ``import mailtrap as mt`` to the closing ``print(``."""
    lines = [line.rstrip() for line in stdout.splitlines()]
    start = lines.index("import mailtrap as mt")
    depth: int | None = None
    for i in range(start, len(lines)):
        if depth is None and lines[i].startswith("print("):
            depth = 0
        if depth is not None:
            depth += lines[i].count("(") - lines[i].count(")")
            if depth == 0:
                return "\n".join(lines[start : i + 1])
    raise AssertionError(f"no complete print(...) after the import in:\n{stdout}")
