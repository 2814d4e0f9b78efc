"""examples/: the Python (official SDK, httpx) and Node.js (official SDK) examples run as
a user would run them, against ``postroom serve`` over HTTPS with a private CA, and the
message each one sent is found in the email logs.

The Node SDK comes from tests/node (``npm ci``, as test_node_sdk_e2e.py installs it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from server import Instance, cli_env
from test_node_sdk_e2e import NODE_DIR, node_sdk  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _env(instance: Instance, to: str) -> dict[str, str]:
    return cli_env(
        {
            "POSTROOM_URL": instance.server.url(),
            "POSTROOM_HOST": instance.host,
            "POSTROOM_TOKEN": instance.token,
            "EXAMPLE_FROM": "app@example.com",
            "EXAMPLE_TO": to,
            # Each language's own way to trust a private CA.
            "REQUESTS_CA_BUNDLE": str(instance.tls.ca_pem),
            "SSL_CERT_FILE": str(instance.tls.ca_pem),
            "NODE_EXTRA_CA_CERTS": str(instance.tls.ca_pem),
        }
    )


def _check_sent(instance: Instance, stdout: str, to: str) -> None:
    ids = stdout.split()
    assert len(ids) == 1, stdout
    with instance.http() as http:
        entry = http.get(f"/api/email_logs/{ids[0]}")
    assert entry.status_code == 200, entry.text
    assert entry.json()["to"] == to
    assert entry.json()["category"] == "examples"


@pytest.mark.parametrize("script", ["send_sdk.py", "send_httpx.py"])
def test_python_examples(instance: Instance, script: str) -> None:
    to = f"{script.removesuffix('.py').replace('_', '-')}@example.org"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "python" / script)],
        env=_env(instance, to), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    _check_sent(instance, done.stdout, to)


def test_node_example(instance: Instance, node_sdk: str) -> None:  # noqa: F811
    to = "node-example@example.org"
    env = _env(instance, to)
    # The example requires "mailtrap" as an app would; here it is tests/node's install.
    env["NODE_PATH"] = str(NODE_DIR / "node_modules")
    done = subprocess.run(
        [node_sdk, str(EXAMPLES / "node" / "send.js")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    _check_sent(instance, done.stdout, to)


def test_examples_are_listed() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    for path in EXAMPLES.rglob("*"):
        if path.is_file() and path.name != "README.md" and "node_modules" not in path.parts:
            assert str(path.relative_to(EXAMPLES)) in readme, path
    assert os.path.exists(EXAMPLES / "django" / "settings_snippet.py")
