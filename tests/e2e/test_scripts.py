"""./scripts/run and ./scripts/test install once: a second start needs no package index.

A copy of the project (pyproject.toml, README, LICENSE, scripts/, src/) gets a fresh
virtualenv that sees this one's site-packages through a .pth file, so the first install
finds every dependency present and fetches only the build backend. After it, pip is
pointed at an unreachable index with no other source: a second ``./scripts/run`` starts
the server all the same, while a changed pyproject.toml makes the scripts install again
(which then fails, offline: proof that they tried).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from server import cli_env, free_ports

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_EXTRA_INDEX_URL": "",
    "PIP_NO_INDEX": "1",
    "PIP_RETRIES": "0",
    "PIP_TIMEOUT": "2",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project with a virtualenv that already has the dependencies."""
    copy = tmp_path_factory.mktemp("clone") / "postroom"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, copy / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("scripts", "src"):
        shutil.copytree(ROOT / name, copy / name, ignore=ignore)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(copy / ".venv")], check=True, timeout=120)
    purelib = Path(sysconfig.get_paths()["purelib"])
    site = next((copy / ".venv" / "lib").glob("python3*/site-packages"))
    (site / "_postroom_test_deps.pth").write_text(f"{purelib}\n")
    return copy


def _env(offline: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = cli_env(extra)
    env.pop("VIRTUAL_ENV", None)
    if offline:
        env = {k: v for k, v in env.items() if not k.startswith("PIP_")} | OFFLINE
    return env


def _run_server(project: Path, offline: bool) -> tuple[int, str]:
    """``./scripts/run`` on free ports until its API answers; (exit code, stderr)."""
    port, bulk, smtp, smtp_bulk, inbound = free_ports(5)
    args = ["--data-dir", str(project / "data"), "--port", str(port), "--bulk-port", str(bulk)]
    args += ["--smtp-port", str(smtp), "--smtp-bulk-port", str(smtp_bulk)]
    args += ["--smtps-port", "0", "--smtps-bulk-port", "0", "--inbound-port", str(inbound)]
    err = project / f"run-{time.monotonic_ns()}.err"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            ["./scripts/run", *args],
            cwd=project,
            env=_env(offline),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if _answers(port):
                proc.send_signal(signal.SIGTERM)
                return proc.wait(timeout=30), err.read_text()
            time.sleep(0.2)
        return proc.wait(timeout=1) if proc.poll() is not None else -999, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _answers(port: int) -> bool:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/api/accounts")
        return connection.getresponse().status == 401
    except OSError:
        return False
    finally:
        connection.close()


def _install(project: Path, extra: str, offline: bool) -> subprocess.CompletedProcess[str]:
    """The scripts' install step alone (scripts/lib/venv.sh), as scripts/test runs it."""
    return subprocess.run(
        ["bash", "-c", f". scripts/lib/venv.sh && postroom_venv {extra}"],
        cwd=project,
        env=_env(offline),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_second_start_needs_no_package_index(project: Path) -> None:
    code, stderr = _run_server(project, offline=False)
    assert code == 0, stderr
    assert "Installing Postroom (.) into .venv (first install)" in stderr
    assert f"postroom is {project}/.venv/bin/postroom" in stderr
    assert "source .venv/bin/activate" in stderr

    code, stderr = _run_server(project, offline=True)
    assert code == 0, stderr
    assert "Installing" not in stderr


def test_test_dependencies_install_once_and_again_when_pyproject_changes(
    project: Path,
) -> None:
    first = _install(project, "test", offline=False)
    assert first.returncode == 0, first.stderr
    assert "Installing Postroom (.[test]) into .venv (first install)" in first.stderr
    again = _install(project, "test", offline=True)
    assert again.returncode == 0 and "Installing" not in again.stderr, again.stderr
    # The plain install is covered by the test one: ./scripts/run stays offline too.
    assert _install(project, "", offline=True).returncode == 0

    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n# a new dependency would go here\n")
    changed = _install(project, "test", offline=True)
    assert "Installing Postroom (.[test]) into .venv (pyproject.toml changed)" in changed.stderr
    assert changed.returncode != 0  # it tried, and there is no index to install from
    changed_run = _install(project, "", offline=True)
    assert changed_run.returncode != 0 and "Installing" in changed_run.stderr
