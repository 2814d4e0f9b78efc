"""The official ``mailtrap`` Node.js SDK (4.x) against a real ``postroom serve`` over HTTPS.

JavaScript numbers hold integers exactly only up to 2^53; sandbox message ids beyond
that (the old random 64-bit ids) came back rounded from ``JSON.parse``, so every Messages
and Attachments call of the Node SDK answered 404. tests/node/sandbox_messages.js sends
to the sandbox with the SDK, then lists, shows, reads the attachments and bodies of,
marks read and deletes the captured message, all with the id as JavaScript parsed it.
tests/node/sandbox_api.js makes the SDK's other testing calls (projects, inboxes and their
actions, forward, spam score from a real spamd, HTML analysis, HTML source, .eml).
tests/node/contacts_api.js makes every contacts call of the SDK (fields, lists,
contacts, events, imports, exports).

The SDK is installed with ``npm ci`` from tests/node/package-lock.json (once; reused while
it matches the lock). Without a registry the test is skipped, except under CI, where it
fails: CI must exercise it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from server import Instance

pytestmark = pytest.mark.slow

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
SCRIPT = NODE_DIR / "sandbox_messages.js"
API_SCRIPT = NODE_DIR / "sandbox_api.js"
CONTACTS_SCRIPT = NODE_DIR / "contacts_api.js"


def _locked_version() -> str:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    return str(lock["packages"]["node_modules/mailtrap"]["version"])


def _installed_version() -> str | None:
    manifest = NODE_DIR / "node_modules" / "mailtrap" / "package.json"
    return str(json.loads(manifest.read_text())["version"]) if manifest.exists() else None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the Node SDK test must run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_sdk() -> str:
    """The ``node`` executable, with the locked ``mailtrap`` package installed beside the
    script."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are not installed")
    assert node is not None and npm is not None
    if _installed_version() != _locked_version():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            _unavailable(f"npm ci could not install the SDK (no registry?): {done.stderr[-500:]}")
    assert _installed_version() == _locked_version()
    return node


def _run(
    node: str, instance: Instance, subject: str, script: Path = SCRIPT
) -> list[dict[str, Any]]:
    env = {
        **os.environ,
        "NODE_EXTRA_CA_CERTS": str(instance.tls.ca_pem),
        "POSTROOM_URL": instance.server.url(),
        "POSTROOM_TOKEN": instance.token,
        "POSTROOM_ACCOUNT_ID": str(instance.account_id),
        "POSTROOM_INBOX_ID": str(instance.inbox_id),
        "POSTROOM_SUBJECT": subject,
    }
    done = subprocess.run(
        [node, str(script)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    steps: list[dict[str, Any]] = json.loads(done.stdout)
    return steps


def test_node_sdk_reads_marks_and_deletes_sandbox_messages(
    node_sdk: str, instance: Instance
) -> None:
    subject = f"node {uuid.uuid4().hex}"
    steps = {s["name"]: s for s in _run(node_sdk, instance, subject)}
    failed = {name: s for name, s in steps.items() if not s["ok"] and name != "gone"}
    assert not failed, failed

    [sent_id] = steps["send"]["value"]["message_ids"]
    # The id JavaScript parsed is the id the server answered: exactly.
    assert steps["id"]["value"] == {"id": str(sent_id), "safe": True}
    assert int(sent_id) < 2**53
    query = "SELECT id FROM sandbox_messages WHERE subject = :s"
    assert instance.store.rows(query, s=subject) == []  # deleted by the SDK

    shown = steps["show"]["value"]
    assert shown["subject"] == subject and str(shown["id"]) == sent_id
    [attachment] = steps["attachments"]["value"]
    assert attachment["filename"] == "report.txt" and str(attachment["message_id"]) == sent_id
    assert steps["attachment"]["value"]["filename"] == "report.txt"
    assert steps["text"]["value"].strip() == "Plain body from Node"
    assert "<b>Node</b>" in steps["html"]["value"]
    assert f"Subject: {subject}" in steps["raw"]["value"]
    assert steps["headers"]["value"]["headers"]["subject"] == subject
    assert steps["read"]["value"]["is_read"] is True
    assert str(steps["delete"]["value"]["id"]) == sent_id
    gone = steps["gone"]
    assert gone["ok"] is False and "Not Found" in gone["error"], gone


def test_node_sdk_projects_inboxes_and_message_analysis(
    node_sdk: str, sandbox_instance: Instance
) -> None:
    instance = sandbox_instance
    subject = f"node {uuid.uuid4().hex}"
    steps = {s["name"]: s for s in _run(node_sdk, instance, subject, API_SCRIPT)}
    failed = {name: s for name, s in steps.items() if not s["ok"]}
    assert not failed, failed

    project = steps["project.create"]["value"]
    assert project["name"] == "Node project"
    assert project["id"] in [p["id"] for p in steps["project.list"]["value"]]
    assert steps["project.get"]["value"]["id"] == project["id"]
    assert steps["project.update"]["value"]["name"] == "Node renamed"
    inbox = steps["inbox.create"]["value"]
    assert (inbox["name"], inbox["project_id"]) == ("Node inbox", project["id"])
    assert inbox["id"] in [i["id"] for i in steps["inbox.list"]["value"]]
    assert steps["inbox.get"]["value"]["id"] == inbox["id"]
    assert steps["inbox.update"]["value"]["name"] == "Node box"
    assert steps["inbox.clean"]["value"]["emails_count"] == 0
    assert steps["inbox.read"]["value"]["emails_unread_count"] == 0
    assert steps["inbox.credentials"]["value"]["password"] != inbox["password"]
    assert (
        steps["inbox.enable"]["value"]["email_username_enabled"]
        is not inbox["email_username_enabled"]
    )
    assert steps["inbox.username"]["value"]["email_username"] != inbox["email_username"]
    assert steps["inbox.delete"]["value"]["id"] == inbox["id"]
    assert steps["project.delete"]["value"] == {"id": project["id"]}
    query = "SELECT id FROM projects WHERE id = :p"
    assert instance.store.rows(query, p=project["id"]) == []

    report = steps["spam"]["value"]["report"]
    assert "DRUGS_ERECTILE" in {d["RuleName"] for d in report["Details"]}
    assert report["Threshold"] == 5.0
    analysis = steps["analysis"]["value"]["report"]
    rules = {e["rule_name"]: e for e in analysis["errors"]}
    assert "Outlook (Windows)" in rules["display:flex"]["email_clients"]["desktop"]
    assert "<form>" in steps["source"]["value"]
    assert f"Subject: {subject}" in steps["eml"]["value"]
    assert steps["forward"]["value"]["message"].startswith("Your email message")
    query = "SELECT recipient FROM deliveries WHERE recipient = :r"
    assert [r.recipient for r in instance.store.rows(query, r="qa@example.org")] == [
        "qa@example.org"
    ]


def test_node_sdk_contacts_lists_fields_events_imports_and_exports(
    node_sdk: str, instance: Instance
) -> None:
    tag = uuid.uuid4().hex
    steps = {s["name"]: s for s in _run(node_sdk, instance, tag, CONTACTS_SCRIPT)}
    failed = {name: s for name, s in steps.items() if not s["ok"] and name != "contact.gone"}
    assert not failed, failed
    value = {name: s["value"] for name, s in steps.items() if s["ok"]}

    # Fields come unwrapped, as the contract has them (the SDK's typings say ``data``).
    city, age = value["field.create"], value["field.create.age"]
    assert (city["merge_tag"], city["data_type"]) == (f"city_{tag}", "text")
    assert age["data_type"] == "integer"
    listed_fields = [f["id"] for f in value["field.list"]]
    assert listed_fields[-2:] == [city["id"], age["id"]]
    assert value["field.get"]["name"] == f"City {tag}"
    renamed = value["field.update"]
    assert renamed["name"] == f"Town {tag}" and renamed["merge_tag"] == f"city_{tag}"

    news, vip = value["list.create"], value["list.create.vip"]
    assert news["name"] == f"News {tag}"
    assert {news["id"], vip["id"]} <= {x["id"] for x in value["list.list"]}
    assert [x["id"] for x in value["list.search"]] == [news["id"]]
    assert value["list.get"]["id"] == vip["id"]
    assert value["list.update"]["name"] == f"Gold {tag}"

    email = f"ann.{tag}@example.com"
    ann = value["contact.create"]["data"]
    assert (ann["email"], ann["status"], ann["list_ids"]) == (email, "subscribed", [news["id"]])
    assert ann["fields"] == {f"city_{tag}": "Oslo", f"age_{tag}": 30}
    assert value["contact.get.id"]["data"]["email"] == email
    assert value["contact.get.email"]["data"]["id"] == ann["id"]
    updated = value["contact.update"]["data"]
    assert updated["fields"] == {f"city_{tag}": "Oslo", f"age_{tag}": 31}
    assert updated["list_ids"] == [vip["id"]]
    assert value["contact.unsubscribe"]["data"]["status"] == "unsubscribed"

    event = value["event.create"]
    assert (event["contact_id"], event["contact_email"], event["name"]) == (
        ann["id"],
        email,
        "UserLogin",
    )
    assert event["params"] == {"ok": True, "n": 2, "x": None}

    job = value["import.create"]
    assert job["status"] == "finished"
    assert (job["created_contacts_count"], job["updated_contacts_count"]) == (1, 1)
    assert value["import.get"]["id"] == job["id"]
    assert value["import.get"]["status"] == "finished"
    bob = value["contact.get.imported"]["data"]
    assert bob["list_ids"] == [news["id"]] and bob["fields"][f"age_{tag}"] == 40

    exported = value["export.create"]
    assert exported["status"] == "finished" and exported["url"]
    again = value["export.get"]
    assert (again["id"], again["url"]) == (exported["id"], exported["url"])
    with instance.http() as http:
        headers = {"Authorization": f"Bearer {instance.token}"}
        csv_text = http.get(exported["url"], headers=headers).text
    assert f"bob.{tag}@example.com" in csv_text and email not in csv_text

    assert value["contact.delete"] == ""  # 204, no body
    gone = steps["contact.gone"]
    assert gone["ok"] is False and "Not Found" in gone["error"], gone
    query = "SELECT id FROM contact_lists WHERE id = :l"
    assert instance.store.rows(query, l=vip["id"]) == []
    query = "SELECT id FROM contact_fields WHERE id = :f"
    assert instance.store.rows(query, f=age["id"]) == []
