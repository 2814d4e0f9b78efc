"""The pytest plugin (``pytest-postroom``, postroom/testing): its fixtures used directly,
and a separate pytest run that finds them through the ``pytest11`` entry point.

The mail here goes in through the real listener, over HTTP."""

from __future__ import annotations

import base64
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from postroom.testing.plugin import PostroomServer
from postroom.testing.sandbox import Sandbox

SENDER = {"email": "app@example.com", "name": "App"}


def send(server: PostroomServer, body: dict[str, object]) -> dict[str, object]:
    response = httpx.post(
        f"{server.url}/api/send",
        json=body,
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_next_mail_text_html_links_and_attachments(
    postroom_server: PostroomServer, postroom_sandbox: Sandbox
) -> None:
    pdf = b"%PDF-1.4 not really"
    send(
        postroom_server,
        {
            "from": SENDER,
            "to": [{"email": "someone@example.org"}],
            "subject": "Reset your password",
            "text": "Go to https://app.example.com/reset?t=abc to reset.",
            "html": '<p><a href="https://app.example.com/reset?t=abc">Reset</a> '
            '<a href="https://app.example.com/help">Help</a></p>',
            "attachments": [
                {
                    "filename": "receipt.pdf",
                    "type": "application/pdf",
                    "content": base64.b64encode(pdf).decode(),
                }
            ],
        },
    )
    mail = postroom_sandbox.next_mail(to="someone@example.org")
    assert mail.subject == "Reset your password"
    assert mail.to_email == "someone@example.org"
    assert "to reset" in mail.text
    assert mail.links == ["https://app.example.com/reset?t=abc", "https://app.example.com/help"]
    assert mail.attachment("receipt.pdf").content == pdf
    assert mail.attachment("receipt.pdf").content_type == "application/pdf"
    with pytest.raises(AssertionError, match="no attachment"):
        mail.attachment("other.pdf")


def test_waits_for_the_address_asked_for_and_skips_earlier_mail(
    postroom_server: PostroomServer, postroom_sandbox: Sandbox
) -> None:
    for n, to in enumerate(["first@example.org", "second@example.org", "first@example.org"]):
        send(
            postroom_server,
            {"from": SENDER, "to": [{"email": to}], "subject": f"n{n}", "text": "hi"},
        )
    assert postroom_sandbox.next_mail(to="second@example.org").subject == "n1"
    # What came before the last mail returned is behind the sandbox now.
    assert postroom_sandbox.next_mail(to="first@example.org").subject == "n2"
    postroom_sandbox.assert_no_mail(within=0.3)
    with pytest.raises(AssertionError, match="no new message to nobody@example.org"):
        postroom_sandbox.next_mail(to="nobody@example.org", timeout=0.5)


def test_a_new_sandbox_does_not_see_mail_of_earlier_tests(
    postroom_server: PostroomServer,
) -> None:
    send(postroom_server, {"from": SENDER, "to": [{"email": "x@example.org"}], "subject": "old",
                           "text": "old"})  # fmt: skip
    first = postroom_server.sandbox()
    first.next_mail(to="x@example.org")
    later = postroom_server.sandbox()
    assert later.mails() == []
    with pytest.raises(AssertionError):
        later.next_mail(to="x@example.org", timeout=0.3)


def test_template_variables(postroom_server: PostroomServer, postroom_sandbox: Sandbox) -> None:
    client = postroom_server.client()
    template = client.create_template(
        {
            "name": "Welcome",
            "category": "onboarding",
            "subject": "Welcome {{name}}",
            "body_text": "Hello {{name}}, confirm: {{url}}",
            "body_html": '<a href="{{url}}">Confirm</a>',
        }
    )
    variables = {"name": "Ada", "url": "https://app.example.com/confirm/1"}
    send(
        postroom_server,
        {
            "from": SENDER,
            "to": [{"email": "new.user@example.org"}],
            "template_uuid": template["uuid"],
            "template_variables": variables,
        },
    )
    mail = postroom_sandbox.next_mail(to="new.user@example.org")
    assert mail.subject == "Welcome Ada"
    assert mail.template_uuid == template["uuid"]
    assert mail.template_variables == variables
    assert mail.links == ["https://app.example.com/confirm/1"]


def test_the_entry_point_loads_the_fixtures_in_another_project(tmp_path: Path) -> None:
    """A fresh pytest run (no conftest) finds the fixtures by name through the entry point;
    a test that does not ask for them starts no server."""
    (tmp_path / "test_app.py").write_text(
        textwrap.dedent(
            """
            import httpx, threading

            def test_plain():
                assert not any(t.name == "postroom" for t in threading.enumerate())

            def test_send(postroom_server, postroom_sandbox):
                r = httpx.post(
                    postroom_server.url + "/api/send",
                    headers={"Authorization": "Bearer " + postroom_server.token},
                    json={"from": {"email": "a@example.com"}, "to": [{"email": "b@example.org"}],
                          "subject": "Hi", "text": "see https://example.org/x"},
                )
                assert r.status_code == 200, r.text
                mail = postroom_sandbox.next_mail(to="b@example.org")
                assert mail.links == ["https://example.org/x"]

            def test_fails_without_mail(postroom_sandbox):
                postroom_sandbox.next_mail(to="c@example.org", timeout=0.2)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-o", "addopts=",
         str(tmp_path / "test_app.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "1 failed, 2 passed" in done.stdout, done.stdout + done.stderr
    assert "no new message to c@example.org" in done.stdout


def test_loading_the_plugin_does_not_load_the_server() -> None:
    """pytest loads the plugin in every run of a project that installs Postroom: it must
    not import the application (FastAPI, SQLAlchemy, the runner) until a fixture is used."""
    code = (
        "import sys, postroom.testing.plugin, postroom.testing\n"
        "heavy = {'postroom.cli.runner', 'fastapi', 'sqlalchemy', 'uvicorn'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_more_than_a_page_of_mail_comes_back_in_order(
    postroom_server: PostroomServer, postroom_sandbox: Sandbox
) -> None:
    """The API pages 30 messages, newest first; the sandbox still returns the first
    captured one first and lists them all in the order they were captured (which need
    not be the order they were sent: capture runs concurrently)."""
    for n in range(35):
        send(postroom_server, {"from": SENDER, "to": [{"email": "bulk@example.org"}],
                               "subject": f"m{n:02d}", "text": "x"})  # fmt: skip
    first = postroom_sandbox.next_mail(to="bulk@example.org")
    # Capture is asynchronous: wait for the last one, which leaves the rest to list.
    deadline = time.monotonic() + 10
    while len(rest := postroom_sandbox.mails()) < 34 and time.monotonic() < deadline:
        time.sleep(0.1)
    ids = [first.id] + [m.id for m in rest]
    assert ids == sorted(ids) and len(set(ids)) == 35
    subjects = sorted([first.subject] + [m.subject for m in rest])
    assert subjects == [f"m{n:02d}" for n in range(35)]


def test_the_official_sdk_against_the_https_server(
    postroom_tls_server: PostroomServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``postroom_tls_server``: HTTPS with a self-signed certificate that ``ca_file``
    trusts, so the official SDK (HTTPS only) sends to it unchanged."""
    import mailtrap as mt

    assert postroom_tls_server.ca_file is not None
    assert postroom_tls_server.url.startswith("https://127.0.0.1:")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(postroom_tls_server.ca_file))
    sandbox = postroom_tls_server.sandbox()
    sdk = mt.MailtrapClient(token=postroom_tls_server.token, api_host=postroom_tls_server.api_host)
    sent = sdk.send(
        mt.Mail(
            sender=mt.Address(email="app@example.com"),
            to=[mt.Address(email="sdk@example.org")],
            subject="Through the SDK",
            text="Hello https://app.example.com/welcome",
        )
    )
    assert sent["success"] is True
    mail = sandbox.next_mail(to="sdk@example.org")
    assert mail.subject == "Through the SDK"
    assert mail.links == ["https://app.example.com/welcome"]
    # Without the certificate, a client refuses the server.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{postroom_tls_server.url}/api/accounts")
