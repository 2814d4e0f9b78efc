"""Sandbox assertions for tests: wait for the next mail to an address, then look at it.

A :class:`Sandbox` watches one inbox from a starting point (the newest message when it
was made), so a test sees only the mail its own code sent, without emptying the inbox
under another test. A :class:`Mail` fetches its parts lazily from the API: text, HTML,
links, headers, attachments and, from the email log, the template variables it was
rendered with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from postroom.cli.client import PostroomClient
from postroom.cli.links import links_of

DEFAULT_WAIT = 10.0


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes
    disposition: str


@dataclass
class Mail:
    """One captured message. Parts are fetched on first use and kept."""

    client: PostroomClient = field(repr=False)
    inbox_id: int
    row: dict[str, Any] = field(repr=False)

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def subject(self) -> str:
        return str(self.row.get("subject") or "")

    @property
    def from_email(self) -> str:
        return str(self.row.get("from_email") or "")

    @property
    def to_email(self) -> str:
        return str(self.row.get("to_email") or "")

    def __repr__(self) -> str:
        return f"<Mail #{self.id} to {self.to_email!r}: {self.subject!r}>"

    @cached_property
    def text(self) -> str:
        """The plain-text body ('' when the message has none)."""
        return self.client.message_body(self.inbox_id, self.id, "txt")

    @cached_property
    def html(self) -> str:
        """The HTML body as sent ('' when the message has none)."""
        return self.client.message_body(self.inbox_id, self.id, "htmlsource")

    @cached_property
    def raw(self) -> str:
        """The whole RFC 5322 message."""
        return self.client.message_body(self.inbox_id, self.id, "raw")

    @cached_property
    def headers(self) -> dict[str, str]:
        """Decoded headers by lower-case name."""
        headers: dict[str, str] = self.client.message_headers(self.inbox_id, self.id)["headers"]
        return headers

    @cached_property
    def links(self) -> list[str]:
        """Links of the HTML body (``href``), else URLs found in the text body."""
        return links_of(self.html, self.text)

    @cached_property
    def attachments(self) -> list[Attachment]:
        result = []
        for item in self.client.attachments(self.inbox_id, self.id):
            content = self.client.attachment_content(self.inbox_id, self.id, int(item["id"]))
            result.append(
                Attachment(
                    str(item["filename"]),
                    str(item["content_type"]),
                    content,
                    str(item.get("attachment_type") or "attachment"),
                )
            )
        return result

    def attachment(self, filename: str) -> Attachment:
        for item in self.attachments:
            if item.filename == filename:
                return item
        names = [a.filename for a in self.attachments]
        raise AssertionError(f"{self!r} has no attachment {filename!r} (it has {names})")

    @cached_property
    def log(self) -> dict[str, Any]:
        """The email log of the sent message this capture is (matched by Message-ID)."""
        wanted = self.headers.get("message-id", "").strip().strip("<>")
        page = self.client.logs(filters={"to": {"ci_equal": self.to_email}})
        for entry in page.get("messages", []):
            if str(entry.get("rfc_message_id") or "").strip().strip("<>") == wanted:
                return dict(entry)
        raise AssertionError(f"no email log for {self!r} (Message-ID {wanted!r})")

    @property
    def template_variables(self) -> dict[str, Any]:
        """The ``template_variables`` it was sent with ({} when none)."""
        return dict(self.log.get("template_variables") or {})

    @property
    def template_uuid(self) -> str | None:
        value = self.log.get("template_uuid")
        return str(value) if value else None


class Sandbox:
    """Assertions on one sandbox inbox, from the moment it was made."""

    def __init__(self, client: PostroomClient, inbox_id: int) -> None:
        self.client = client
        self.inbox_id = inbox_id
        rows = client.messages(inbox_id)
        self.after_id = max((int(r["id"]) for r in rows), default=0)

    def next_mail(self, to: str | None = None, *, timeout: float = DEFAULT_WAIT) -> Mail:
        """The next mail (to ``to``, if given) since the last one returned; waits up to
        ``timeout`` seconds and fails the test (AssertionError) when none comes."""
        try:
            row = self.client.wait_for_message(
                self.inbox_id, to=to, after_id=self.after_id, timeout=timeout
            )
        except TimeoutError as exc:
            raise AssertionError(str(exc)) from None
        self.after_id = max(self.after_id, int(row["id"]))
        return Mail(self.client, self.inbox_id, row)

    wait_for = next_mail

    def mails(self) -> list[Mail]:
        """Every mail captured since this sandbox was made, oldest first."""
        rows = self.client.messages_after(self.inbox_id, self.after_id)
        return [Mail(self.client, self.inbox_id, r) for r in sorted(rows, key=lambda r: r["id"])]

    def assert_no_mail(self, to: str | None = None, *, within: float = 1.0) -> None:
        """Fail if a mail (to ``to``) arrives within ``within`` seconds."""
        try:
            row = self.client.wait_for_message(
                self.inbox_id, to=to, after_id=self.after_id, timeout=within
            )
        except TimeoutError:
            return
        raise AssertionError(f"unexpected mail #{row['id']} to {row.get('to_email')!r}")
