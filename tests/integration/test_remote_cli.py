"""``postroom remote …`` against a real Postroom (the pytest plugin's in-process server,
over HTTP): each command's answer, ``--json`` output, the saved login and exit codes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postroom.cli.main import app
from postroom.testing.plugin import PostroomServer
from postroom.testing.sandbox import Sandbox

SENDER = "app@example.com"


@pytest.fixture
def remote_env(
    postroom_server: PostroomServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> PostroomServer:
    monkeypatch.setenv("POSTROOM_URL", postroom_server.url)
    monkeypatch.setenv("POSTROOM_TOKEN", postroom_server.token)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("COLUMNS", "200")
    return postroom_server


def run(*args: str, input: str | None = None, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["remote", *args], input=input)
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    return result.stdout


def test_send_from_flags_file_and_stdin_then_wait_and_show(
    remote_env: PostroomServer, postroom_sandbox: Sandbox, tmp_path: Path
) -> None:
    sent = json.loads(run("send", "--from", SENDER, "--to", "cli1@example.org", "--subject",
                          "From flags", "--text", "one https://x.example/1", "--json"))  # fmt: skip
    assert sent["success"] is True
    assert postroom_sandbox.next_mail(to="cli1@example.org").subject == "From flags"

    message = {"from": {"email": SENDER}, "to": [{"email": "cli2@example.org"}],
               "subject": "From a file", "text": "two"}  # fmt: skip
    (tmp_path / "m.json").write_text(json.dumps(message))
    run("send", "--file", str(tmp_path / "m.json"), "--subject", "Overridden")
    assert postroom_sandbox.next_mail(to="cli2@example.org").subject == "Overridden"

    run("send", "-f", "-", input=json.dumps({**message, "subject": "From stdin"}))
    mail = postroom_sandbox.next_mail(to="cli2@example.org")
    assert mail.subject == "From stdin"

    shown = json.loads(run("sandbox", "show", str(mail.id), "--json"))
    assert shown["subject"] == "From stdin" and shown["text"].strip() == "two"
    assert "From stdin" in run("sandbox", "list", "--search", "cli2@")
    listed = json.loads(run("sandbox", "list", "--search", "cli2@", "--json"))
    assert [m["subject"] for m in listed][:2] == ["From stdin", "Overridden"]
    assert "two" in run("sandbox", "show", str(mail.id))

    # Nothing new: wait gives up with exit code 4.
    run("sandbox", "wait", "--to", "cli3@example.org", "--timeout", "0.3", code=4)


def test_logs_search_and_show(remote_env: PostroomServer) -> None:
    run("send", "--from", SENDER, "--to", "logs@example.org", "--subject", "Logged",
        "--text", "x", "--category", "cli-test")  # fmt: skip
    page = json.loads(run("logs", "search", "--to", "logs@example.org", "--json"))
    (entry,) = page["messages"]
    assert entry["subject"] == "Logged" and entry["category"] == "cli-test"
    shown = json.loads(run("logs", "show", entry["message_id"], "--json"))
    assert shown["message_id"] == entry["message_id"]
    assert "Logged" in run("logs", "search", "--to", "logs@example.org")
    assert "Logged" in run("logs", "show", entry["message_id"])
    run("logs", "show", "00000000-0000-4000-8000-000000000000", code=1)


def test_suppressions_add_list_export_import_remove(
    remote_env: PostroomServer, tmp_path: Path
) -> None:
    run("suppressions", "add", "s1@example.org", "s2@example.org")
    rows = json.loads(run("suppressions", "list", "--email", "s1@example.org", "--json"))
    assert [r["email"] for r in rows] == ["s1@example.org"]
    exported = tmp_path / "out.csv"
    run("suppressions", "export", str(exported))
    assert "s2@example.org" in exported.read_text()
    run("suppressions", "remove", "s1@example.org", "s2@example.org")
    assert json.loads(run("suppressions", "list", "--email", "s1@example.org", "--json")) == []
    # The exported file imports back (the header row is repeated in each chunk).
    lines = exported.read_text().splitlines()
    header = lines[0]
    many = [header] + [line for line in lines[1:] if "s2@example.org" in line]
    (tmp_path / "in.csv").write_text("\n".join(many) + "\n")
    run("suppressions", "import", str(tmp_path / "in.csv"))
    rows = json.loads(run("suppressions", "list", "--email", "s2@example.org", "--json"))
    assert [r["email"] for r in rows] == ["s2@example.org"]


def test_templates_push_and_pull_a_folder(remote_env: PostroomServer, tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "cli-welcome.json").write_text(
        json.dumps({"name": "CLI welcome", "category": "cli", "subject": "Hi {{name}}"})
    )
    (folder / "cli-welcome.html").write_text("<p>Hi {{name}}</p>")
    (folder / "cli-welcome.txt").write_text("Hi {{name}}")
    first = json.loads(run("templates", "push", str(folder), "--json"))
    assert [d["action"] for d in first] == ["created"]
    (folder / "cli-welcome.txt").write_text("Hello {{name}}")
    again = json.loads(run("templates", "push", str(folder), "--json"))
    assert again == [{"name": "CLI welcome", "id": first[0]["id"], "action": "updated"}]

    pulled = tmp_path / "pulled"
    run("templates", "pull", str(pulled))
    assert (pulled / "cli-welcome.txt").read_text() == "Hello {{name}}"
    assert (pulled / "cli-welcome.html").read_text() == "<p>Hi {{name}}</p>"
    assert json.loads((pulled / "cli-welcome.json").read_text())["subject"] == "Hi {{name}}"


def test_stats_chart_and_domains(remote_env: PostroomServer) -> None:
    run("send", "--from", SENDER, "--to", "stats@example.org", "--subject", "s", "--text", "x")
    data = json.loads(run("stats", "--days", "3", "--json"))
    # Stats are rolled up by the scheduler: the shape is checked, not today's counts.
    assert isinstance(data["per_day"], list) and "delivery_count" in data["total"]
    chart = run("stats", "--days", "3")
    assert "delivered" in chart and "Total:" in chart
    added = json.loads(run("domains", "add", "cli.example.net", "--json"))
    assert added["domain_name"] == "cli.example.net"
    records = json.loads(run("domains", "records", "cli.example.net", "--json"))
    assert records and all(r["status"] and r["value"] for r in records)
    assert "cli.example.net" in run("domains", "list")
    # Wide values are folded, never cut: the DKIM key can be copied whole.
    shown = run("domains", "records", "cli.example.net")
    assert "v=DKIM1; k=rsa" in shown and "…" not in shown
    # Not published anywhere: verification fails with exit code 1.
    run("domains", "verify", "cli.example.net", code=1)
    # The first keys are still pending: a rotation is refused (exit 1, the API's reason).
    result = CliRunner().invoke(app, ["remote", "domains", "rotate", "cli.example.net"])
    assert result.exit_code == 1 and "already pending" in result.stderr


def test_login_saves_a_private_file_and_bad_config_exits_2(
    postroom_server: PostroomServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("POSTROOM_URL", raising=False)
    monkeypatch.delenv("POSTROOM_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    run("whoami", code=2)
    run("login", postroom_server.url, "--token", "pr_" + "0" * 40, code=1)
    run("login", postroom_server.url, input=postroom_server.token + "\n")
    saved = tmp_path / "config" / "postroom" / "remote.json"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    assert json.loads(saved.read_text())["url"] == postroom_server.url
    me = json.loads(run("whoami", "--json"))
    assert me["scopes"] == ["admin"] and me["url"] == postroom_server.url
    # Unreachable server: exit code 3.
    monkeypatch.setenv("POSTROOM_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("POSTROOM_TOKEN", postroom_server.token)
    run("whoami", code=3)


def test_a_saved_token_is_not_sent_to_another_url(
    postroom_server: PostroomServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("POSTROOM_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("POSTROOM_URL", postroom_server.url)
    run("login", postroom_server.url, "--token", postroom_server.token)
    run("whoami")
    monkeypatch.setenv("POSTROOM_URL", "http://127.0.0.1:9")
    result = CliRunner().invoke(app, ["remote", "whoami"])
    assert result.exit_code == 2 and "no API token" in result.stderr


def test_sandbox_open_hands_the_html_to_the_browser(
    remote_env: PostroomServer, postroom_sandbox: Sandbox, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import webbrowser

    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(browser))
    monkeypatch.setattr(webbrowser, "_tryorder", None)  # read BROWSER again
    run("send", "--from", SENDER, "--to", "open@example.org", "--subject", "Open me",
        "--html", "<h1>Look</h1>")  # fmt: skip
    mail = postroom_sandbox.next_mail(to="open@example.org")
    run("sandbox", "open", str(mail.id))
    url = opened.read_text().strip()
    assert url.startswith("file://")
    page = Path(url.removeprefix("file://"))
    assert page.read_text().strip() == "<h1>Look</h1>"
    page.unlink()


def test_webhooks_add_list_test_and_replay(remote_env: PostroomServer) -> None:
    """The webhook commands: the secret is printed once at creation; a test event to an
    endpoint that cannot be reached (``.invalid`` never resolves) exits 1 with the error."""
    made = json.loads(run("webhooks", "add", "https://hooks.invalid/in", "--events",
                          "delivery,bounce", "--json"))  # fmt: skip
    assert made["signing_secret"] and made["event_types"] == ["delivery", "bounce"]
    listed = json.loads(run("webhooks", "list", "--json"))
    assert [w["id"] for w in listed] == [made["id"]] and "signing_secret" not in listed[0]
    assert "hooks.invalid" in run("webhooks", "list")
    printed = run("webhooks", "add", "https://hooks.invalid/two", "--type", "audit_log")
    assert "Signing secret (shown once" in printed
    failed = json.loads(run("webhooks", "test", str(made["id"]), "--json", code=1))
    assert failed["data"]["ok"] is False and failed["data"]["error"]
    replayed = json.loads(run("webhooks", "replay", str(made["id"]), "--since",
                              "2026-01-01T00:00:00Z", "--until", "2026-01-02T00:00:00Z",
                              "--json"))  # fmt: skip
    assert replayed["data"]["events"] == 0
    run("webhooks", "test", "999999", code=1)
