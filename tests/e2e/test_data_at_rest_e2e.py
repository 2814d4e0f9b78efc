"""What ``postroom serve`` leaves on disk: private files.

A data directory from an older installation (world-readable files) is tightened at the
next start, with a warning in the log.
"""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from server import start_server

pytestmark = pytest.mark.slow


def modes(data_dir: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in data_dir.iterdir()}


def test_an_older_installation_is_tightened_at_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = start_server(data_dir)
    assert first.stop() == 0
    # As an installation from before this release left it: readable by everyone.
    data_dir.chmod(0o755)
    for path in data_dir.iterdir():
        path.chmod(0o644)

    again = start_server(data_dir)
    try:
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert {n: m for n, m in modes(data_dir).items() if m != 0o600} == {}
        deadline = time.monotonic() + 10
        while "tightened the permissions of" not in again.stderr and time.monotonic() < deadline:
            time.sleep(0.05)
        log = again.stderr
        assert f"tightened the permissions of {data_dir} from 755 to 700" in log
        assert f"{data_dir / 'postroom.db'} from 644 to 600" in log
        assert f"{data_dir / 'secret.key'} from 644 to 600" in log
    finally:
        assert again.stop() == 0, again.output()
