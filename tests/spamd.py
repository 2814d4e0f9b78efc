"""A real SpamAssassin daemon on loopback for tests (Debian packages spamassassin, spamd,
spamc; .ci/run installs them).

The ``spamd`` fixture starts ``spamd -x -L`` (no per-user config, local rules only: no
network tests) on a free port once per session and yields the port. Without spamd the
tests that use it are skipped, except under CI, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

STARTUP_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def spamd_executable() -> str | None:
    found = shutil.which("spamd") or (
        "/usr/sbin/spamd" if Path("/usr/sbin/spamd").exists() else None
    )
    return found if found and shutil.which("spamc") else None


@pytest.fixture(scope="session")
def spamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    executable = spamd_executable()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("spamd/spamc are not installed (.ci/run installs spamassassin spamd spamc)")
        pytest.skip("spamd/spamc are not installed")
    port = _free_port()
    log = tmp_path_factory.mktemp("spamd") / "spamd.log"
    command = [executable, "-x", "-L", f"--listen=127.0.0.1:{port}", "-s", "stderr",
               "--max-children=2"]  # fmt: skip
    if os.geteuid() == 0:
        command += ["-u", "nobody"]  # spamd refuses to scan as root
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=sink, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"spamd did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield port
    finally:
        # spamd's children share its process group (started in a session of its own).
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
