"""What ``postroom serve`` leaves on disk: private files, and no inbox password in them.

A real server over HTTPS, real writes (sends, captures, inboxes made through the API),
then ``stat`` and a byte search over every file of the data directory; and the same data
directory from an older installation (world-readable files) tightened at the next start,
with a warning in the log.
"""

from __future__ import annotations

import smtplib
import ssl
import stat
import time
from pathlib import Path

import pytest
from server import Instance, start_server

pytestmark = pytest.mark.slow


def modes(data_dir: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in data_dir.iterdir()}


def test_the_data_dir_is_private_and_holds_no_inbox_password(instance: Instance) -> None:
    data_dir = instance.server.data_dir
    with instance.http() as http:
        base = f"/api/accounts/{instance.account_id}"
        project = http.post(f"{base}/projects", json={"project": {"name": "At rest"}}).json()
        inbox = http.post(
            f"{base}/projects/{project['id']}/inboxes", json={"inbox": {"name": "Disk"}}
        ).json()
        default = http.get(f"{base}/inboxes/{instance.inbox_id}").json()
    passwords = [inbox["password"], default["password"]]
    assert all(passwords)

    # The SMTP listener still takes the credentials the API shows.
    with smtplib.SMTP("127.0.0.1", instance.server.smtp_ports[0], timeout=10) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=str(instance.tls.ca_pem)))
        smtp.login(inbox["username"], inbox["password"])
        message = b"From: disk@example.com\r\nTo: ann@example.org\r\nSubject: at rest\r\n\r\nhi\r\n"
        smtp.sendmail("disk@example.com", ["ann@example.org"], message)
    query = "SELECT inbox_id FROM sandbox_messages WHERE subject = 'at rest'"
    assert instance.store.rows(query) == [(inbox["id"],)]

    found = modes(data_dir)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert {"postroom.db", "postroom.db-wal", "postroom.db-shm", "secret.key"} <= set(found)
    assert {name: mode for name, mode in found.items() if mode != 0o600} == {}
    on_disk = b"".join(p.read_bytes() for p in data_dir.iterdir() if p.is_file())
    assert [p for p in passwords if p.encode() in on_disk] == []


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
