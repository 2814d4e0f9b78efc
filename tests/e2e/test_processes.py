"""Roles as processes, for real: ``serve --processes 2`` and the roles run alone.

On PostgreSQL: two children share the listeners (both answer /healthz), exactly one
scheduler leads, a SIGKILLed child is restarted, acknowledged mail survives it, and
SIGTERM stops the parent and every child with status 0. The roles started one by one
(``postroom api``, ``worker``, ``scheduler`` with --health-port) deliver a message
between them. On SQLite, more than one process is refused with a message that names
PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server import HOST, Server, Store, cli_env, free_ports, start_server, storage_args

pytestmark = pytest.mark.slow


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.kill9()


def _instances(port: int, tries: int = 60) -> dict[str, str]:
    """instance -> scheduler state, from /healthz over fresh connections."""
    seen: dict[str, str] = {}
    for _ in range(tries):
        answer = httpx.get(f"http://{HOST}:{port}/healthz", timeout=5).json()
        seen[answer["instance"]] = answer["scheduler"]
    return seen


def _children(parent: int) -> set[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True, check=False
    )
    return {int(p) for p in out.stdout.split()}


def _send(http: httpx.Client, n: int, tag: str) -> list[str]:
    ids = []
    for i in range(n):
        response = http.post(
            "/api/send",
            json={
                "from": {"email": "app@example.com"},
                "to": [{"email": f"{tag}{i}@example.com"}],
                "subject": tag,
                "text": "kept",
            },
        )
        assert response.status_code == 200, response.text
        ids += response.json()["message_ids"]
    return ids


def test_two_processes_share_the_listeners_and_survive_a_kill(
    tmp_path: Path, pg_url: str, servers: list[Server]
) -> None:
    data_dir = tmp_path / "data"
    [health_port] = free_ports(1)
    server = start_server(
        data_dir,
        database_url=pg_url,
        args=("--processes", "2", "--health-port", str(health_port)),
    )
    servers.append(server)
    token = server.first_start_token()
    assert token, server.output()
    # The health port is shared by the children too.
    deadline = time.monotonic() + 20
    while True:
        try:
            ready = httpx.get(f"http://{HOST}:{health_port}/readyz", timeout=5)
            if ready.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.2)
    assert ready.json()["role"] == "all"
    store = Store(data_dir, pg_url)
    try:
        deadline = time.monotonic() + 20
        while True:
            seen = _instances(server.port)
            if len(seen) == 2 and sorted(seen.values()) == ["leading", "standby"]:
                break
            assert time.monotonic() < deadline, f"{seen}\n{server.output()}"
            time.sleep(0.5)
        children = _children(server.proc.pid)
        assert len(children) == 2, children

        with httpx.Client(
            base_url=server.url(), headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http:
            acknowledged = _send(http, 20, "before")
            victim = min(children)
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while len(_children(server.proc.pid) - {victim}) < 2:
                assert time.monotonic() < deadline, server.output()
                time.sleep(0.2)
            assert "restarting" in server.output()
            acknowledged += _send(http, 20, "after")
        # A new child answers beside the survivor; one of them leads.
        deadline = time.monotonic() + 30
        while True:
            seen = _instances(server.port)
            if len(seen) == 2 and "leading" in seen.values():
                break
            assert time.monotonic() < deadline, f"{seen}\n{server.output()}"
            time.sleep(0.5)

        children = _children(server.proc.pid)
        assert server.stop() == 0, server.output()
        for pid in children:
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid), pid
        stored = {row[0] for row in store.rows("SELECT id FROM deliveries")}
        assert set(acknowledged) <= stored
    finally:
        store.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_several_processes_on_sqlite_are_refused(tmp_path: Path) -> None:
    port, bulk = free_ports(2)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "postroom",
            "serve",
            *storage_args(tmp_path / "data", None),
            "--port",
            str(port),
            "--bulk-port",
            str(bulk),
            "--processes",
            "2",
        ],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "PostgreSQL" in done.stderr
    assert "--processes 2" in done.stderr


def _role(role: str, data_dir: Path, pg_url: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "postroom", role, *storage_args(data_dir, pg_url), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=cli_env({"POSTROOM_DELIVERY__POLL_INTERVAL": "0.2"}),
        )


def _wait_ready(port: int, log: Path) -> dict[str, str]:
    deadline = time.monotonic() + 30
    while True:
        try:
            answer = httpx.get(f"http://{HOST}:{port}/readyz", timeout=2)
            if answer.status_code == 200:
                body: dict[str, str] = answer.json()
                return body
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def test_roles_run_alone_and_deliver_together(tmp_path: Path, pg_url: str) -> None:
    data_dir = tmp_path / "data"
    api_port, bulk_port, worker_health, scheduler_health = free_ports(4)
    logs = {name: tmp_path / f"{name}.log" for name in ("api", "worker", "scheduler")}
    procs = {
        "api": _role(
            "api",
            data_dir,
            pg_url,
            "--port",
            str(api_port),
            "--bulk-port",
            str(bulk_port),
            "--tracking-port",
            "0",
            log=logs["api"],
        ),
        "worker": _role(
            "worker", data_dir, pg_url, "--health-port", str(worker_health), log=logs["worker"]
        ),
        "scheduler": _role(
            "scheduler",
            data_dir,
            pg_url,
            "--health-port",
            str(scheduler_health),
            "--log-format",
            "json",
            log=logs["scheduler"],
        ),
    }
    store = Store(data_dir, pg_url)
    try:
        assert _wait_ready(api_port, logs["api"])["role"] == "api"
        assert _wait_ready(worker_health, logs["worker"])["role"] == "worker"
        deadline = time.monotonic() + 30
        while _wait_ready(scheduler_health, logs["scheduler"]).get("scheduler") != "leading":
            assert time.monotonic() < deadline, logs["scheduler"].read_text()
            time.sleep(0.2)
        metrics = httpx.get(f"http://{HOST}:{worker_health}/metrics").text
        assert 'postroom_process_info{instance="' in metrics
        assert 'role="worker"' in metrics

        token = subprocess.run(
            [
                sys.executable,
                "-m",
                "postroom",
                "token",
                "create",
                "--name",
                "roles",
                *storage_args(data_dir, pg_url),
            ],
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        with httpx.Client(
            base_url=f"http://{HOST}:{api_port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ) as http:
            [delivery] = _send(http, 1, "roles")
        deadline = time.monotonic() + 30
        while store.scalar("SELECT state FROM deliveries WHERE id = :id", id=delivery) != (
            "delivered"
        ):
            assert time.monotonic() < deadline, logs["worker"].read_text()
            time.sleep(0.2)
    finally:
        store.close()
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        codes = {name: proc.wait(timeout=30) for name, proc in procs.items()}
    assert codes == {"api": 0, "worker": 0, "scheduler": 0}, {
        name: log.read_text()[-2000:] for name, log in logs.items()
    }
    # --log-format json: the scheduler's log lines are JSON objects with its role.
    lines = [line for line in logs["scheduler"].read_text().splitlines() if line.startswith("{")]
    assert any('"message":"this process now leads scheduler"' in line for line in lines)
    assert all('"role":"scheduler"' in line for line in lines)


def test_a_second_server_on_one_sqlite_database_is_refused(
    tmp_path: Path, servers: list[Server]
) -> None:
    data_dir = tmp_path / "data"
    first = start_server(data_dir)
    servers.append(first)
    port, bulk = free_ports(2)
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "postroom",
            "worker",  # any role: the database is what is refused
            *storage_args(data_dir, None),
        ],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"pid {first.proc.pid}" in second.stderr
    assert "PostgreSQL" in second.stderr
    assert first.running
    assert first.stop() == 0
    # Once the first has stopped, the database may be served again.
    again = start_server(data_dir, ports=(port, bulk))
    servers.append(again)
    assert again.stop() == 0
