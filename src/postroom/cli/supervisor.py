"""``postroom serve --processes N``: run N child processes that share the listeners.

The parent binds every listening socket once (cli/ports.py), migrates the database and
then starts N children (``python -m postroom.cli.child``), handing each the sockets
(inherited file descriptors: the kernel spreads the connections among the processes
that accept on one socket) and its settings (as JSON on its stdin, so no secret shows
in a process listing or environment). Each child plays every role; on PostgreSQL the
workers share the queue through leases and one scheduler leads (storage/leadership.py).

Supervision: a child that exits while the parent is not stopping is restarted after a
delay that doubles from ``RESTART_FIRST_DELAY`` up to ``scale.restart_max_delay`` and
starts over once a child has lived ``STABLE_SECONDS``. SIGTERM or SIGINT stops them
all: each child gets SIGTERM (its listeners stop accepting, requests in flight finish,
a message is acknowledged only once it is committed, so nothing acknowledged is lost),
and one still running after ``STOP_GRACE_SECONDS`` is killed. Children notice the
parent's death on their own (cli/child.py) and stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger("postroom.supervisor")

RESTART_FIRST_DELAY = 0.5
STABLE_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.1


@dataclass
class Child:
    """One child slot: its process (None while waiting to restart) and restart state."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float = RESTART_FIRST_DELAY
    restart_at: float = 0.0
    restarts: int = 0


class Supervisor:
    """Start, watch, restart and stop ``count`` children; see the module docstring."""

    def __init__(
        self,
        count: int,
        sockets: dict[int, socket.socket],
        payload: Callable[[int], bytes],
        *,
        max_delay: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        command: list[str] | None = None,
    ) -> None:
        self.children = [Child(i) for i in range(count)]
        self.command = command or [sys.executable, "-m", "postroom.cli.child"]
        self.sockets = sockets
        self.payload = payload
        self.max_delay = max_delay
        self.clock = clock
        self.stopping = False

    def _spawn(self, child: Child) -> None:
        fds = [sock.fileno() for sock in self.sockets.values()]
        proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            pass_fds=fds,
            close_fds=True,
        )
        assert proc.stdin is not None
        # A child that died at once closed the pipe: the watch loop restarts it.
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(self.payload(child.index))
            proc.stdin.close()
        child.proc, child.started = proc, self.clock()
        log.info("child %d started (pid %d)", child.index, proc.pid)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT; returns the exit status for the parent."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        for child in self.children:
            self._spawn(child)
        while not self.stopping:
            self.watch_once()
            time.sleep(POLL_SECONDS)
        return self.stop()

    def watch_once(self) -> None:
        """Notice exited children and restart those whose delay is over."""
        now = self.clock()
        for child in self.children:
            if child.proc is not None:
                code = child.proc.poll()
                if code is None:
                    continue
                lived = now - child.started
                if lived >= STABLE_SECONDS:
                    child.delay = RESTART_FIRST_DELAY
                child.restart_at = now + child.delay
                log.warning(
                    "child %d (pid %d) exited with %s after %.1f s; restarting in %.1f s",
                    child.index,
                    child.proc.pid,
                    code,
                    lived,
                    child.delay,
                )
                child.delay = min(child.delay * 2, self.max_delay)
                child.proc = None
            if child.proc is None and now >= child.restart_at and not self.stopping:
                child.restarts += 1
                self._spawn(child)

    def stop(self) -> int:
        """SIGTERM every child, wait for them (SIGKILL after the grace); 0 when all ended
        on their own."""
        running = [c.proc for c in self.children if c.proc is not None]
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = self.clock() + STOP_GRACE_SECONDS
        status = 0
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                log.warning("child pid %d did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.wait()
                status = 1
        return status


def process_count(value: str) -> int:
    """``--processes``: a positive number, or ``auto`` (one per CPU core)."""
    if value.strip().lower() == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"--processes must be a number or 'auto', not {value!r}") from None
    if count < 1:
        raise ValueError("--processes must be at least 1")
    return count
