"""The Django example of docs/testing.md and examples/django: django-anymail's Mailtrap
backend, pointed at the pytest plugin's Postroom, sends through Django's own mail API;
the sandbox assertions see the message, its links and its attachment, and anymail's
sandbox setting (``MAILTRAP_SANDBOX_ID``) captures into the inbox named."""

from __future__ import annotations

import django
import pytest
from django.conf import settings

from postroom.testing.plugin import PostroomServer
from postroom.testing.sandbox import Sandbox


@pytest.fixture
def django_mail(postroom_server: PostroomServer) -> None:
    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=["anymail"],
            DEFAULT_FROM_EMAIL="app@example.com",
            EMAIL_BACKEND="anymail.backends.mailtrap.EmailBackend",
            ANYMAIL={},
        )
        django.setup()
    settings.ANYMAIL = {
        "MAILTRAP_API_TOKEN": postroom_server.token,
        "MAILTRAP_API_URL": f"{postroom_server.url}/api/",
    }


def test_django_send_mail_through_anymail(django_mail: None, postroom_sandbox: Sandbox) -> None:
    from django.core.mail import EmailMultiAlternatives

    message = EmailMultiAlternatives(
        subject="Confirm your address",
        body="Confirm: https://app.example.com/confirm/42",
        to=["ada@example.org"],
    )
    message.attach_alternative('<a href="https://app.example.com/confirm/42">Confirm</a>',
                               "text/html")  # fmt: skip
    message.attach("terms.txt", "Be nice.", "text/plain")
    assert message.send() == 1
    mail = postroom_sandbox.next_mail(to="ada@example.org")
    assert mail.subject == "Confirm your address"
    assert mail.from_email == "app@example.com"
    assert mail.links == ["https://app.example.com/confirm/42"]
    assert mail.attachment("terms.txt").content == b"Be nice."


def test_anymail_sandbox_id_captures_in_that_inbox(
    django_mail: None, postroom_server: PostroomServer
) -> None:
    from django.core.mail import send_mail

    settings.ANYMAIL = {**settings.ANYMAIL, "MAILTRAP_SANDBOX_ID": postroom_server.inbox_id}
    sandbox = postroom_server.sandbox()
    send_mail("Sandboxed", "hello", None, ["sandboxed@example.org"])
    assert sandbox.next_mail(to="sandboxed@example.org").text.strip() == "hello"
