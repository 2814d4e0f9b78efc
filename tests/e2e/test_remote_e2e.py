"""``postroom remote`` as a subprocess against ``postroom serve`` over HTTPS with a
private CA: trusted through ``SSL_CERT_FILE``, refused (exit 3) without it."""

from __future__ import annotations

import json
import subprocess
import sys

from server import Instance, cli_env


def _remote(instance: Instance, *args: str, ca: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"POSTROOM_URL": instance.server.url(), "POSTROOM_TOKEN": instance.token}
    if ca:
        env["SSL_CERT_FILE"] = str(instance.tls.ca_pem)
    return subprocess.run(
        [sys.executable, "-m", "postroom", "remote", *args],
        env=cli_env(env), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_remote_over_https_with_a_private_ca(instance: Instance) -> None:
    done = _remote(instance, "whoami", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["account_id"] == instance.account_id

    sent = _remote(instance, "send", "--from", "app@example.com", "--to", "tls@example.org",
                   "--subject", "Over TLS", "--text", "x", "--sandbox", str(instance.inbox_id),
                   "--json")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    (message_id,) = json.loads(sent.stdout)["message_ids"]
    shown = _remote(instance, "sandbox", "show", message_id, "--json")
    assert json.loads(shown.stdout)["subject"] == "Over TLS"

    untrusted = _remote(instance, "whoami", ca=False)
    assert untrusted.returncode == 3
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr or "certificate" in untrusted.stderr
