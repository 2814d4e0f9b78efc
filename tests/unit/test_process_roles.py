"""Process-level pieces of scale-out: the SQLite serving lock, --processes, JSON logs."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import orjson
import pytest

from postroom.cli.logs import JsonFormatter
from postroom.cli.roles import ALL_ROLES, Role, flags_of, label
from postroom.cli.supervisor import Supervisor, process_count
from postroom.storage import processlock


def test_a_second_process_on_one_sqlite_database_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'postroom.db'}"
    held = processlock.hold(url)
    assert held is not None
    # flock is per open file: a second open in this process contends like another process.
    with pytest.raises(processlock.DatabaseInUse) as refused:
        processlock.hold(url)
    assert "PostgreSQL" in str(refused.value)
    assert str(tmp_path / "postroom.db") in str(refused.value)
    held.close()  # the process ended: the next one may serve
    again = processlock.hold(url)
    assert again is not None
    again.close()


def test_postgresql_needs_no_serving_lock() -> None:
    assert processlock.hold("postgresql+psycopg://u@127.0.0.1/db") is None
    assert processlock.sqlite_path("sqlite://") is None


def test_process_count() -> None:
    assert process_count("3") == 3
    assert process_count("auto") >= 1
    for bad in ("0", "-1", "many"):
        with pytest.raises(ValueError):
            process_count(bad)


def test_roles_and_their_listeners() -> None:
    assert label(ALL_ROLES) == "all"
    assert label({Role.WORKER}) == "worker"
    assert label({Role.SMTP, Role.API}) == "api+smtp"
    assert "--port" in flags_of({Role.API})
    assert "--smtp-port" not in flags_of({Role.API})
    assert flags_of({Role.WORKER, Role.SCHEDULER}) == set()


def test_json_log_lines_carry_role_and_instance() -> None:
    formatter = JsonFormatter("worker", "host:42")
    record = logging.LogRecord("postroom.worker", logging.WARNING, __file__, 1, "x %d", (7,), None)
    record.delivery = "abc"
    line = orjson.loads(formatter.format(record))
    assert line["message"] == "x 7"
    assert line["level"] == "WARNING"
    assert line["role"] == "worker"
    assert line["instance"] == "host:42"
    assert line["delivery"] == "abc"
    assert line["time"].endswith("+00:00")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert "RuntimeError: boom" in orjson.loads(formatter.format(record))["exception"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _wait_exit(supervisor: Supervisor) -> None:
    for child in supervisor.children:
        if child.proc is not None:
            child.proc.wait(timeout=30)


def test_a_crashing_child_is_restarted_with_a_doubling_delay() -> None:
    # Real child processes that read their start-up payload and exit at once (a crash);
    # only the supervisor's clock is simulated.
    clock = FakeClock()
    crash = [sys.executable, "-c", "import sys; sys.stdin.buffer.read(); sys.exit(3)"]
    supervisor = Supervisor(1, {}, lambda index: b"{}", max_delay=2.0, clock=clock, command=crash)
    [child] = supervisor.children
    supervisor._spawn(child)
    delays = []
    for _ in range(4):
        _wait_exit(supervisor)
        supervisor.watch_once()  # notices the exit, schedules the restart
        assert child.proc is None
        delays.append(child.restart_at - clock.now)
        clock.now = child.restart_at - 0.01
        supervisor.watch_once()
        assert child.proc is None  # not before its delay
        clock.now = child.restart_at
        supervisor.watch_once()
        assert child.proc is not None  # restarted
    assert delays == [0.5, 1.0, 2.0, 2.0]  # doubling, capped at max_delay
    assert child.restarts == 4
    # A child that lived long enough starts the backoff over.
    _wait_exit(supervisor)
    clock.now += 120
    child.started = clock.now - 120
    supervisor.watch_once()
    assert child.restart_at - clock.now == 0.5
    assert supervisor.stop() == 0


def test_stop_terminates_every_child() -> None:
    sleeper = [sys.executable, "-c", "import sys, time; sys.stdin.buffer.read(); time.sleep(60)"]
    supervisor = Supervisor(2, {}, lambda index: b"{}", command=sleeper)
    for child in supervisor.children:
        supervisor._spawn(child)
    procs = [c.proc for c in supervisor.children]
    assert supervisor.stop() == 0  # SIGTERM ends them within the grace
    assert all(p is not None and p.returncode == -signal.SIGTERM for p in procs)
