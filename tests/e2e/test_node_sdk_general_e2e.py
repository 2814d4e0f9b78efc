"""The official ``mailtrap`` Node.js SDK's calls outside its testing and contacts APIs,
against one real ``postroom serve`` over HTTPS.

tests/node/general.js makes the calls (accounts, billing, API tokens, sub-accounts,
account accesses and permissions, sending domains and company info, templates,
suppressions, tracking opt-outs, webhooks, transactional/batch/bulk sending, email logs
and stats, inbound folders, inboxes, messages and threads, reply, reply-all and forward,
and all eleven email-campaign calls)
and prints each outcome; this module asserts them. Between the script's two phases the
test mails a message and its answer to the inbound inbox the script made, over SMTP to
the inbound listener ``serve`` runs; a name server on loopback publishes the sender's SPF.

The server's scheduler runs every 0.3 s and stats settle at once, so the script's email
logs and stats see its own sends within seconds. The SDK is installed as in
tests/e2e/test_node_sdk_e2e.py (``npm ci``; CI must run it).
"""

from __future__ import annotations

import gc
import json
import os
import smtplib
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from server import Server, TlsFiles, run_cli, start_server
from test_node_sdk_e2e import NODE_DIR, node_sdk  # noqa: F401  (the fixture)

from dnsserver import LocalDnsServer

pytestmark = pytest.mark.slow

SCRIPT = NODE_DIR / "general.js"
VIEWER = "viewer@node.example"
CATEGORY = "node-general"
Steps = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[tuple[Server, str]]:
    """A server, its first-start token, a viewer user, a name server for inbound SPF."""
    data_dir = tmp_path_factory.mktemp("node-general") / "data"
    with LocalDnsServer() as dns:
        dns.add_txt("sender.example", "v=spf1 ip4:127.0.0.1 -all")
        env = {
            "POSTROOM_SCHEDULER__INTERVAL": "0.3",
            "POSTROOM_INSIGHTS__STATS_SETTLE_SECONDS": "0",
            "POSTROOM_DNS__SERVER": dns.address,
            "POSTROOM_DNS__TIMEOUT": "2",
        }
        server = start_server(data_dir, tls=(tls_files.cert_chain_pem, tls_files.key_pem), env=env)
        try:
            token = server.first_start_token()
            assert token
            run_cli(
                "user",
                "create",
                VIEWER,
                "--role",
                "viewer",
                data_dir=data_dir,
                env={"POSTROOM_PASSWORD": "a long enough passphrase 42"},
            )
            yield server, token
        except BaseException:
            server.kill9()
            raise
        gc.collect()
        assert server.stop() == 0, server.output()


def _run(node: str, server: Server, token: str, tls: TlsFiles, **extra: str) -> Steps:
    env = {
        **os.environ,
        "NODE_EXTRA_CA_CERTS": str(tls.ca_pem),
        "POSTROOM_URL": server.url(),
        "POSTROOM_BULK_URL": server.url(bulk=True),
        "POSTROOM_TOKEN": token,
        "POSTROOM_ACCOUNT_ID": "1",
        "POSTROOM_ORGANIZATION_ID": "1",
        "POSTROOM_VIEWER": VIEWER,
        "POSTROOM_CATEGORY": CATEGORY,
        **extra,
    }
    done = subprocess.run(
        [node, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {s["name"]: s for s in json.loads(done.stdout)}


def _values(steps: Steps) -> dict[str, Any]:
    failed = {name: s for name, s in steps.items() if not s["ok"]}
    assert not failed, failed
    return {name: s["value"] for name, s in steps.items()}


def _inbound_port(server: Server) -> int:
    args = [str(a) for a in server.proc.args]
    return int(args[args.index("--inbound-port") + 1])


def _mail_thread(server: Server, address: str) -> None:
    def mail(message_id: str, subject: str, extra: str = "") -> str:
        return (
            "From: Alice <alice@sender.example>\r\n"
            f"To: {address}\r\n"
            "Cc: bob@elsewhere.example\r\n"
            f"Subject: {subject}\r\n"
            "Date: Mon, 07 Dec 2026 00:00:00 +0000\r\n"
            f"Message-ID: {message_id}\r\n"
            f"{extra}\r\n"
            "Where is my order?\r\n"
        )

    answer = "In-Reply-To: <n1@sender.example>\r\nReferences: <n1@sender.example>\r\n"
    with smtplib.SMTP("127.0.0.1", _inbound_port(server), timeout=30) as smtp:
        smtp.ehlo("mx.sender.example")
        for message in (
            mail("<n1@sender.example>", "Order 9"),
            mail("<n2@sender.example>", "Re: Order 9", answer),
        ):
            assert smtp.sendmail("alice@sender.example", [address], message) == {}


def test_node_sdk_general_api(
    node_sdk: str,  # noqa: F811  (the imported fixture)
    served: tuple[Server, str],
    tls_files: TlsFiles,
) -> None:
    server, token = served
    v = _values(_run(node_sdk, server, token, tls_files, POSTROOM_PHASE="main"))

    # Accounts, billing, tokens, sub-accounts.
    assert [a["id"] for a in v["accounts.list"]] == [1]
    assert v["billing.usage"]["sending"]["usage"]["sent_messages_count"]["current"] == 0
    made = v["tokens.create"]
    assert made["token"].startswith("pr_") and made["resources"][0]["access_level"] == 10
    assert made["id"] in [t["id"] for t in v["tokens.list"]]
    assert v["tokens.get"]["last_4_digits"] == made["last_4_digits"]
    assert v["tokens.reset"]["token"] != made["token"]
    assert made["id"] not in [t["id"] for t in v["tokens.after"]]
    sub = v["subaccounts.create"]
    assert sub["name"] == "Node staging"
    assert [a["name"] for a in v["subaccounts.list"]] == ["Postroom", "Node staging"]

    # Sending domain and company info.
    domain = v["domains.create"]
    assert domain["domain_name"] == "node.example"
    assert domain["id"] in [d["id"] for d in v["domains.list"]["data"]]
    assert v["domains.get"]["id"] == domain["id"]
    assert v["domains.update"]["open_tracking_enabled"] is True
    assert v["domains.instructions"] == ""  # 204, as the contract: no body
    assert v["company.create"]["data"]["website_url"] == "https://node.example"
    assert v["company.get"]["data"]["name"] == "Node Ltd"
    assert v["company.update"]["data"]["name"] == "Node Inc"

    # Account accesses and permissions (the viewer made with `postroom user create`).
    [viewer] = [a for a in v["accesses.list"] if a["specifier"]["email"] == VIEWER]
    assert v["permissions.bulk"] == {"message": "Permissions have been updated!"}
    project_id = v["accesses.project"]["id"]
    assert [a["id"] for a in v["accesses.by_project"]] == [viewer["id"]]
    assert [a["id"] for a in v["accesses.by_domain"]] == [viewer["id"]]
    held = {
        (r["resource_type"], r["resource_id"], r["access_level"])
        for r in v["accesses.by_project"][0]["resources"]
    }
    assert ("project", project_id, 100) in held
    # What GET …/account_accesses answers (the SDK's getResources asks that path).
    assert viewer["id"] in [a["id"] for a in v["permissions.resources"]]
    assert v["accesses.remove"] == {"id": viewer["id"]}
    assert viewer["id"] not in [a["id"] for a in v["accesses.after"]]

    # Suppressions and tracking opt-outs, each created, found, deleted.
    suppression = v["suppressions.create"]["data"]
    assert suppression["email"] == "blocked@node.example" and suppression["type"] == "manual import"
    assert [s["id"] for s in v["suppressions.list"]] == [suppression["id"]]
    assert v["suppressions.after"] == []
    opt_out = v["optouts.create"]["data"]
    assert opt_out["domain_name"] == "node.example"
    assert [o["id"] for o in v["optouts.list"]["data"]] == [opt_out["id"]]
    assert v["optouts.after"]["data"] == []

    # Templates.
    template = v["templates.create"]
    assert template["name"] == "Node welcome" and template["body_text"] == "Hello {{name}}"
    assert template["id"] in [t["id"] for t in v["templates.list"]]
    assert v["templates.get"]["uuid"] == template["uuid"]
    assert v["templates.update"]["subject"] == "Hi {{name}}"
    assert template["id"] not in [t["id"] for t in v["templates.after"]]

    # Webhooks.
    hook = v["webhooks.create"]["data"]
    assert hook["signing_secret"] and hook["event_types"] == ["delivery", "open"]
    assert hook["id"] in [h["id"] for h in v["webhooks.list"]["data"]]
    assert v["webhooks.get"]["data"]["sending_stream"] == "bulk"
    changed = v["webhooks.update"]["data"]
    assert changed["url"].endswith("/v2") and changed["event_types"] == ["click"]
    assert v["webhooks.delete"]["data"]["id"] == hook["id"]
    assert hook["id"] not in [h["id"] for h in v["webhooks.after"]["data"]]

    # Sending, email logs, stats.
    assert v["send"]["success"] is True and len(v["send"]["message_ids"]) == 1
    assert [r["success"] for r in v["batch"]["responses"]] == [True, True]
    assert v["bulk.send"]["success"] is True
    logs = v["logs.list"]["messages"]
    assert sorted(m["to"] for m in logs) == [
        "ann@gmail.com",
        "ben@example.org",
        "cy@yahoo.com",
        "dee@example.net",
    ]
    one = v["logs.get"]
    assert one["message_id"] == logs[0]["message_id"] and one["status"] == "delivered"
    assert v["stats.get"]["delivery_count"] == 4
    today = datetime.now(UTC).date().isoformat()
    assert v["stats.by_date"] == [{"name": "date", "value": today, "stats": v["stats.get"]}]
    assert [g["value"] for g in v["stats.by_category"]] == [CATEGORY]
    esp = {g["value"]: g["stats"]["delivery_count"] for g in v["stats.by_esp"]}
    assert esp["Google"] == 1 and esp["Yahoo"] == 1
    assert sum(g["stats"]["delivery_count"] for g in v["stats.by_domain"]) == 4
    assert v["stats.streams"]["delivery_count"] == 1

    # Inbound: folder and inbox made, then mail arrives for the second phase.
    folder, inbox = v["folders.create"], v["inboxes.create"]
    assert [f["id"] for f in v["folders.list"]] == [folder["id"]]
    assert v["folders.get"]["name"] == "Node desk"
    assert v["folders.update"]["name"] == "Node help"
    assert inbox["address"].endswith("@inbound.mail.postroom.test")
    assert [i["id"] for i in v["inboxes.list"]] == [inbox["id"]]
    assert v["inboxes.get"]["address"] == inbox["address"]
    assert v["inboxes.update"]["name"] == "Returns"

    # Email campaigns: the draft, its state machine, a gradual start to two readers.
    made = v["campaigns.create"]["data"]
    assert made["current_state"] == "draft" and made["domain_name"] == "campaigns.node.example"
    assert [c["id"] for c in v["campaigns.list"]["data"]] == [made["id"]]
    assert v["campaigns.list"]["pagination"]["token"] == 1
    assert v["campaigns.get"]["data"]["template"]["subject"] == "Hello from Node"
    assert v["campaigns.update"]["data"]["delivery_options"] == {"emails_per_hour": 1}
    scheduled = v["campaigns.schedule"]["data"]
    assert scheduled["current_state"] == "scheduled"
    assert scheduled["current_state_metadata"]["scheduled_at"]
    assert v["campaigns.cancel"]["data"]["current_state"] == "draft"
    assert v["campaigns.reset"]["data"]["current_state"] == "draft"
    started = v["campaigns.start"]["data"]
    assert started["current_state"] == "started" and started["recipient_total_count"] == 2
    assert v["campaigns.stats"]["data"]["sent_count"] == 1  # one an hour: the first at once
    assert v["campaigns.terminate"]["data"]["current_state"] == "terminated"
    assert v["campaigns.delete"] == ""  # 204: no body
    assert [c["name"] for c in v["campaigns.after"]["data"]] == ["Node launch!"]

    _mail_thread(server, inbox["address"])
    w = _values(
        _run(
            node_sdk,
            server,
            token,
            tls_files,
            POSTROOM_PHASE="inbound",
            POSTROOM_INBOUND_FOLDER=str(folder["id"]),
            POSTROOM_INBOUND_INBOX=str(inbox["id"]),
        )
    )
    listed = w["messages.list"]
    assert listed["total_count"] == 2
    first = listed["data"][-1]
    assert first["subject"] == "Order 9" and first["from"] == "alice@sender.example"
    [thread] = w["threads.list"]["data"]
    assert thread["message_count"] == 2 and first["thread_id"] == thread["id"]
    assert "Where is my order?" in w["messages.get"]["text_body"]
    assert [len(w[k]["message_ids"]) for k in ("messages.reply", "messages.reply_all")] == [1, 2]
    assert len(w["messages.forward"]["message_ids"]) == 1
    shown = w["threads.get"]
    assert [m["direction"] for m in shown["messages"]] == ["inbound"] * 2 + ["outbound"] * 3
    assert shown["messages"][4]["subject"] == "Fwd: Order 9"
    # Deletions answer 204 (the contract): the reads after them show the effect.
    deletions = ("messages.delete", "threads.delete", "inboxes.delete", "folders.delete")
    assert [w[k] for k in deletions] == [""] * 4
    left = [m["id"] for m in w["threads.after_message"]["messages"]]
    assert len(left) == 4 and first["id"] not in left
    assert w["messages.after"]["total_count"] == 0
    assert w["inboxes.after"] == [] and w["folders.after"] == []
