"""Inbound email through a real ``postroom serve`` and the official Python SDK.

The server resolves through a real name server on loopback (``POSTROOM_DNS__SERVER``)
that publishes the sender's SPF and DMARC records. The SDK's ``inbound_api`` makes a
folder and an inbox; a message is mailed over SMTP to the inbox's address on the inbound
listener ``serve`` runs; the SDK lists it, fetches it (bodies, SPF verdict) and deletes
it, then removes the inbox and the folder. A second test drives every thread,
forward-rule and reply/reply-all/forward method.
"""

from __future__ import annotations

import gc
import smtplib
import ssl
from collections.abc import Iterator

import httpx
import mailtrap as mt
import mailtrap.client
import pytest
from mailtrap.exceptions import APIError
from mailtrap.models.inbound import (
    CreateInboundFolderParams,
    CreateInboundForwardRuleParams,
    CreateInboundInboxParams,
    ForwardInboundMessageParams,
    InboundForwardRuleConditionParams,
    InboundForwardRuleDestination,
    ReplyInboundMessageParams,
    UpdateInboundFolderParams,
    UpdateInboundForwardRuleParams,
    UpdateInboundInboxParams,
)
from server import Instance, Store, TlsFiles, run_cli, start_server

from dnsserver import LocalDnsServer


@pytest.fixture
def dns_instance(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles, dns_server: LocalDnsServer
) -> Iterator[Instance]:
    data_dir = tmp_path_factory.mktemp("inbound") / "data"
    server = start_server(
        data_dir,
        tls=(tls_files.cert_chain_pem, tls_files.key_pem),
        env={"POSTROOM_DNS__SERVER": dns_server.address, "POSTROOM_DNS__TIMEOUT": "2"},
    )
    store = Store(data_dir)
    try:
        token = (
            server.first_start_token()
            or run_cli("token", "create", "--name", "e2e", data_dir=data_dir).strip()
        )
        verify = ssl.create_default_context(cafile=str(tls_files.ca_pem))
        with httpx.Client(verify=verify, timeout=10) as http:
            accounts = http.get(
                f"{server.url()}/api/accounts", headers={"Authorization": f"Bearer {token}"}
            )
        account_id = int(accounts.json()[0]["id"])
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("REQUESTS_CA_BUNDLE", str(tls_files.ca_pem))
            patch.setattr(mailtrap.client, "GENERAL_HOST", f"127.0.0.1:{server.port}")
            yield Instance(server, token, account_id, 0, tls_files, store)
    except BaseException:
        server.kill9()
        raise
    finally:
        store.close()
    gc.collect()
    assert server.stop() == 0, server.output()


def _inbound_port(instance: Instance) -> int:
    args = [str(a) for a in instance.server.proc.args]
    return int(args[args.index("--inbound-port") + 1])


def test_sdk_drives_inbound_and_mail_arrives(
    dns_instance: Instance, dns_server: LocalDnsServer
) -> None:
    dns_server.add_txt("sender.example", "v=spf1 ip4:127.0.0.1 -all")
    dns_server.add_txt("_dmarc.sender.example", "v=DMARC1; p=none")
    api = mt.MailtrapClient(token=dns_instance.token).inbound_api
    # serve says which MX record brings the inboxes' mail.
    mx = "inbound.mail.postroom.test. IN MX 10 mail.postroom.test."
    assert mx in dns_instance.server.output()

    folder = api.folders.create(CreateInboundFolderParams(name="Support"))
    assert api.folders.get_by_id(folder.id).name == "Support"
    assert [f.id for f in api.folders.get_list()] == [folder.id]
    assert api.folders.update(folder.id, UpdateInboundFolderParams(name="Help")).name == "Help"

    inbox = api.inboxes.create(folder.id, CreateInboundInboxParams(name="Tickets"))
    assert inbox.address.endswith("@inbound.mail.postroom.test")
    assert [i.id for i in api.inboxes.get_list(folder.id)] == [inbox.id]
    renamed = api.inboxes.update(folder.id, inbox.id, UpdateInboundInboxParams(name="Desk"))
    assert renamed.name == "Desk" and renamed.address == inbox.address
    assert api.inboxes.get_by_id(folder.id, inbox.id).address == inbox.address

    message = (
        "From: Alice <alice@sender.example>\r\n"
        f"To: {inbox.address}\r\n"
        "Subject: Order 42\r\n"
        "Date: Mon, 07 Dec 2026 00:00:00 +0000\r\n"
        "Message-ID: <o42@sender.example>\r\n"
        "\r\n"
        "Where is my order?\r\n"
    )
    with smtplib.SMTP("127.0.0.1", _inbound_port(dns_instance), timeout=30) as smtp:
        smtp.ehlo("mx.sender.example")
        refused = smtp.sendmail("alice@sender.example", [inbox.address], message)
    assert refused == {}

    listed = api.messages.get_list(inbox.id)
    assert listed.total_count == 1 and listed.last_id is None
    [item] = listed.data
    assert item.subject == "Order 42" and item.from_ == "alice@sender.example"
    detail = api.messages.get_by_id(inbox.id, item.id)
    assert detail.text_body is not None and "Where is my order?" in detail.text_body
    assert detail.raw_message_url and detail.html_body is None
    with dns_instance.http() as http:
        shown = http.get(
            f"/api/inbound/inboxes/{inbox.id}/messages/{item.id}",
            headers={"Authorization": f"Bearer {dns_instance.token}"},
        ).json()
    assert shown["authentication"]["spf"]["result"] == "pass"
    assert shown["authentication"]["dmarc"]["result"] == "pass"

    assert api.messages.delete(inbox.id, item.id).id == item.id
    assert api.messages.get_list(inbox.id).total_count == 0
    assert api.inboxes.delete(folder.id, inbox.id).id == inbox.id
    assert api.folders.delete(folder.id).id == folder.id
    with pytest.raises(APIError):
        api.folders.get_by_id(folder.id)


def test_sdk_threads_forward_rules_and_answers(
    dns_instance: Instance, dns_server: LocalDnsServer
) -> None:
    """Every thread, forward-rule and reply/forward method of the SDK, over HTTPS; the
    server is in its default sandbox delivery mode, so answers and forwards are accepted
    with any From and captured, never sent anywhere."""
    dns_server.add_txt("sender.example", "v=spf1 ip4:127.0.0.1 -all")
    api = mt.MailtrapClient(token=dns_instance.token).inbound_api
    folder = api.folders.create(CreateInboundFolderParams(name="Threads"))
    inbox = api.inboxes.create(folder.id, CreateInboundInboxParams(name="Desk"))

    rules = api.forward_rules
    rule = rules.create(
        inbox.id,
        CreateInboundForwardRuleParams(
            name="From Alice",
            conditions=[
                InboundForwardRuleConditionParams(
                    match_type="sender", operator="contains", value="alice@"
                )
            ],
            destinations=[InboundForwardRuleDestination(email="archive@dest.example")],
        ),
    )
    assert rule.name == "From Alice" and rule.conditions[0].operator == "contains"
    assert [r.id for r in rules.get_list(inbox.id)] == [rule.id]
    assert rules.get_by_id(inbox.id, rule.id).destinations[0].email == "archive@dest.example"
    renamed = rules.update(inbox.id, rule.id, UpdateInboundForwardRuleParams(name="Alice"))
    assert renamed.name == "Alice" and renamed.destinations == rule.destinations

    def mail(message_id: str, subject: str, extra: str = "") -> str:
        return (
            "From: Alice <alice@sender.example>\r\n"
            f"To: {inbox.address}\r\n"
            "Cc: bob@elsewhere.example\r\n"
            f"Subject: {subject}\r\n"
            "Date: Mon, 07 Dec 2026 00:00:00 +0000\r\n"
            f"Message-ID: {message_id}\r\n"
            f"{extra}"
            "\r\n"
            "Where is my order?\r\n"
        )

    with smtplib.SMTP("127.0.0.1", _inbound_port(dns_instance), timeout=30) as smtp:
        smtp.ehlo("mx.sender.example")
        smtp.sendmail(
            "alice@sender.example", [inbox.address], mail("<t1@sender.example>", "Order 7")
        )
        follow = "In-Reply-To: <t1@sender.example>\r\nReferences: <t1@sender.example>\r\n"
        smtp.sendmail(
            "alice@sender.example",
            [inbox.address],
            mail("<t2@sender.example>", "Re: Order 7", follow),
        )

    threads = api.threads.get_list(inbox.id)
    assert threads.total_count == 1 and threads.last_id is None
    [summary] = threads.data
    assert summary.subject == "Order 7" and summary.message_count == 2
    assert api.threads.get_list(inbox.id, search="nothing like it").data == []
    first = api.messages.get_list(inbox.id).data[-1]
    assert first.thread_id == summary.id
    detail = api.messages.get_by_id(inbox.id, first.id)
    [outcome] = detail.forwards
    assert (outcome.status, outcome.destination, outcome.rule_id) == (
        "forwarded",
        "archive@dest.example",
        rule.id,
    )

    replied = api.messages.reply(inbox.id, first.id, ReplyInboundMessageParams(text="On its way"))
    everyone = api.messages.reply_all(
        inbox.id, first.id, ReplyInboundMessageParams(html="<p>Shipped</p>")
    )
    forwarded = api.messages.forward(
        inbox.id,
        first.id,
        ForwardInboundMessageParams(to=[mt.Address(email="ops@dest.example")], text="FYI"),
    )
    # One message id per recipient, as the sending API: reply-all copies Bob.
    assert [len(r.message_ids) for r in (replied, everyone, forwarded)] == [1, 2, 1]

    thread = api.threads.get_by_id(inbox.id, summary.id)
    assert [m.direction for m in thread.messages] == ["inbound"] * 2 + ["outbound"] * 3
    assert thread.messages[0].text_body and "Where is my order?" in thread.messages[0].text_body
    sent = thread.messages[2]
    assert sent.id == replied.message_ids[0] and sent.subject == "Re: Order 7"
    assert sent.in_reply_to == "<t1@sender.example>" and sent.to == ["alice@sender.example"]
    assert sent.delivery is not None and sent.delivery.to == "alice@sender.example"
    assert thread.messages[3].cc == ["bob@elsewhere.example"]
    assert thread.messages[4].subject == "Fwd: Order 7" and thread.messages[4].to == [
        "ops@dest.example"
    ]
    assert thread.last_message_id == forwarded.message_ids[0] and thread.last_sent_at

    assert api.threads.delete(inbox.id, summary.id).id == summary.id
    with pytest.raises(APIError):
        api.threads.get_by_id(inbox.id, summary.id)
    assert api.messages.get_list(inbox.id).total_count == 0
    assert rules.delete(inbox.id, rule.id).id == rule.id
    assert rules.get_list(inbox.id) == []
    api.folders.delete(folder.id)
