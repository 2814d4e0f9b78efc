"""Suppressions through a real ``postroom serve`` and the official Python SDK.

The SDK's ``suppressions_api`` creates, lists and deletes entries (spec §4.2 shapes, as
its pydantic models parse them); a send to a suppressed address through the SDK is
accepted with a message id and rejected with the contract's reason; the inbound SMTP
listener ``serve`` runs (``--inbound-port``) refuses unknown local parts.
"""

from __future__ import annotations

import smtplib

import mailtrap as mt
from mailtrap.models.suppressions import CreateSuppressionParams
from server import Instance

SENDER = mt.Address(email="orders@shop.example")


def _client(instance: Instance) -> mt.MailtrapClient:
    return mt.MailtrapClient(
        token=instance.token, account_id=str(instance.account_id), api_host=instance.host
    )


def _domain_id(instance: Instance) -> int:
    with instance.http() as http:
        response = http.post(
            f"/api/accounts/{instance.account_id}/sending_domains",
            json={"sending_domain": {"domain_name": "supp.example"}},
            headers={"Authorization": f"Bearer {instance.token}"},
        )
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def test_sdk_manages_suppressions_and_a_suppressed_send_is_rejected(instance: Instance) -> None:
    client = _client(instance)
    api = client.suppressions_api.suppressions
    created = api.create(
        CreateSuppressionParams(
            email="blocked@dest.example",
            domain_id=_domain_id(instance),
            sending_stream="transactional",
        )
    )
    assert created.type == "manual import"
    assert created.domain_name == "supp.example"
    assert [s.id for s in api.get_list(email="blocked@dest.example")] == [created.id]

    sent = client.send(
        mt.Mail(
            sender=SENDER,
            to=[mt.Address(email="blocked@dest.example")],
            subject="Hello",
            text="Hi",
        )
    )
    [message_id] = sent["message_ids"]
    state, response = instance.store.rows(
        "SELECT state, last_response FROM deliveries WHERE id = :id", id=message_id
    )[0]
    assert state == "suppressed"
    assert response == "Recipient in suppression list. Reason: manual import"
    kinds = [
        row[0]
        for row in instance.store.rows(
            "SELECT kind FROM events WHERE message_id = :id ORDER BY id", id=message_id
        )
    ]
    assert kinds == ["accepted", "reject"]

    deleted = api.delete(created.id)
    assert deleted.id == created.id
    assert api.get_list(email="blocked@dest.example") == []


def test_serve_runs_the_inbound_listener(instance: Instance) -> None:
    args = [str(a) for a in instance.server.proc.args]
    port = int(args[args.index("--inbound-port") + 1])
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        code, banner = smtp.ehlo("mx.dest.example")
        assert code == 250 and b"SIZE" in banner
        smtp.mail("")
        assert smtp.rcpt("nobody@pr-bounces.supp.example")[0] == 550
        assert smtp.rcpt("postmaster@pr-bounces.supp.example")[0] == 250
        code, _ = smtp.data(
            b"From: a@b.example\r\nSubject: Out of office\r\n"
            b"Auto-Submitted: auto-replied\r\n\r\nAway.\r\n"
        )
        assert code == 250
