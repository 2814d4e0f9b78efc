"""Every method of the official Python SDK's testing (sandbox) API against a real
``postroom serve``: projects, inboxes (with their actions), messages (forward, spam
report, HTML analysis, blocklist report, bodies, headers), attachments, each asserting
what comes back.

The server scores spam with a real spamd (tests/spamd.py), so ``get_spam_report`` is
SpamAssassin's verdict.
"""

from __future__ import annotations

import base64
import time

import mailtrap as mt
import pytest
from mailtrap.models.messages import Blacklists
from server import Instance

pytestmark = pytest.mark.slow

SENDER = mt.Address(email="shop@example.com", name="Shop")
HTML = """<!DOCTYPE html>
<html><body>
<div style="display: flex">
<form action="https://example.com"><input type="text" name="q"></form>
<p>Buy viagra now, FREE money!!!</p>
</div>
</body></html>"""


def _client(instance: Instance, **kwargs: object) -> mt.MailtrapClient:
    # Sends go to this server too (api_host), never to the SDK's default host.
    kwargs.setdefault("api_host", instance.host)
    return mt.MailtrapClient(
        token=instance.token,
        account_id=str(instance.account_id),
        **kwargs,  # type: ignore[arg-type]
    )


def test_projects_and_inboxes_with_the_sdk(sandbox_instance: Instance) -> None:
    testing = _client(sandbox_instance).testing_api
    projects, inboxes = testing.projects, testing.inboxes

    project = projects.create(mt.ProjectParams(name="SDK project"))
    assert project.name == "SDK project" and project.inboxes == []
    assert project.id in [p.id for p in projects.get_list()]
    assert projects.get_by_id(project.id).name == "SDK project"
    assert projects.update(project.id, mt.ProjectParams(name="Renamed")).name == "Renamed"

    inbox = inboxes.create(project.id, mt.CreateInboxParams(name="SDK inbox"))
    assert (inbox.name, inbox.project_id) == ("SDK inbox", project.id)
    assert inbox.id in [i.id for i in inboxes.get_list()]
    assert inboxes.get_by_id(inbox.id).name == "SDK inbox"
    updated = inboxes.update(inbox.id, mt.UpdateInboxParams(name="Renamed inbox"))
    assert updated.name == "Renamed inbox"

    before = inboxes.get_by_id(inbox.id)
    reset = inboxes.reset_credentials(inbox.id)
    assert reset.id == inbox.id and reset.password and reset.password != before.password
    toggled = inboxes.enable_email_address(inbox.id)
    assert toggled.email_username_enabled is not before.email_username_enabled
    renamed = inboxes.reset_email_username(inbox.id)
    assert renamed.email_username and renamed.email_username != before.email_username

    assert inboxes.delete(inbox.id).id == inbox.id
    with pytest.raises(mt.APIError) as gone:
        inboxes.get_by_id(inbox.id)
    assert gone.value.status == 404
    assert projects.delete(project.id).id == project.id
    assert project.id not in [p.id for p in projects.get_list()]


def test_messages_analysis_and_forward_with_the_sdk(sandbox_instance: Instance) -> None:
    iid = sandbox_instance.inbox_id
    sandbox = _client(sandbox_instance, sandbox=True, inbox_id=str(iid))
    sent = sandbox.send(
        mt.Mail(
            sender=SENDER,
            to=[mt.Address(email="buyer@example.org")],
            subject="FREE viagra offer",
            text="Buy viagra now, FREE money!!!",
            html=HTML,
            attachments=[
                mt.Attachment(
                    content=base64.b64encode(b"a,b\n1,2\n"),
                    filename="list.csv",
                    mimetype="text/csv",
                )
            ],
        )
    )
    mid = int(sent["message_ids"][0])
    testing = _client(sandbox_instance).testing_api
    messages = testing.messages

    assert mid in [m.id for m in messages.get_list(iid, search="viagra")]
    assert messages.get_list(iid, search="no such subject") == []
    assert messages.get_list(iid, page=1)[0].id == mid
    shown = messages.show_message(iid, mid)
    assert (shown.subject, shown.to_email) == ("FREE viagra offer", "buyer@example.org")
    assert messages.update(iid, mid, mt.UpdateEmailMessageParams(is_read=True)).is_read
    # The blocklist report: pending at first, then the stored verdict of the lists.
    deadline = time.monotonic() + 20
    report = messages.show_message(iid, mid).blacklists_report_info
    while isinstance(report, Blacklists) and report.result == "pending":
        assert time.monotonic() < deadline, "the blocklist check never finished"
        time.sleep(0.1)
        report = messages.show_message(iid, mid).blacklists_report_info
    assert isinstance(report, Blacklists), report
    assert (report.result, report.domain) == ("success", "example.com")
    # Only the domain lists: the SDK's client is on loopback, which is never looked up.
    assert {r.name for r in report.report} == {
        "dbl.spamhaus.org",
        "multi.surbl.org",
        "multi.uribl.com",
    }
    assert not any(r.in_black_list for r in report.report)

    report = messages.get_spam_report(iid, mid)
    rules = {d.rule_name: d for d in report.details}
    assert "DRUGS_ERECTILE" in rules and report.threshold == 5
    assert report.score == pytest.approx(sum(d.pts for d in report.details), abs=0.11)

    analysis = messages.get_html_analysis(iid, mid)
    assert analysis.status == "success"
    found = {e.rule_name: e for e in analysis.errors}  # type: ignore[attr-defined]
    assert "Outlook (Windows)" in found["display:flex"].email_clients.desktop
    assert found["<form> element"].error_line == 4

    assert messages.get_text_message(iid, mid).strip() == "Buy viagra now, FREE money!!!"
    assert messages.get_html_source(iid, mid).replace("\r\n", "\n").strip() == HTML
    assert "display: flex" in messages.get_html_message(iid, mid)
    raw = messages.get_raw_message(iid, mid)
    assert "Subject: FREE viagra offer" in raw
    assert messages.get_message_as_eml(iid, mid).replace("\r\n", "\n") == raw.replace("\r\n", "\n")
    assert "buyer@example.org" in messages.get_mail_headers(iid, mid)["to"]

    [attachment] = testing.attachments.get_list(iid, mid)
    assert (attachment.filename, attachment.content_type) == ("list.csv", "text/csv")
    assert testing.attachments.get(iid, mid, attachment.id).attachment_size == 8

    forwarded = messages.forward(iid, mid, "qa@example.org")
    assert forwarded.message == "Your email message has been successfully forwarded"
    # The default delivery mode is sandbox: the forward is captured again, to that address.
    rows = sandbox_instance.store.rows(
        "SELECT recipient FROM deliveries WHERE recipient = :r", r="qa@example.org"
    )
    assert [r.recipient for r in rows] == ["qa@example.org"]
    # Counted on the inbox and in the billing cycle, as the SDK reads them.
    assert testing.inboxes.get_by_id(iid).forwarded_messages_count == 1
    general = _client(sandbox_instance).general_api
    usage = general.billing.get_current_billing_usage(sandbox_instance.account_id)
    assert usage.testing.usage.forwarded_messages_count.current == 1

    assert messages.delete(iid, mid).id == mid
    with pytest.raises(mt.APIError) as gone:
        messages.show_message(iid, mid)
    assert gone.value.status == 404
