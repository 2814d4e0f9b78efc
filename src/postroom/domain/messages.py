"""A message to send, after validation: what the API, SMTP and templates all produce.

These types are the contract between the ways in (``postroom.api``, SMTP submission)
and :mod:`postroom.services.accept`; the MIME serializer (:mod:`postroom.domain.mime`)
turns a :class:`MessageDraft` into RFC 5322 bytes, unless the draft carries the finished
message a client submitted (``raw``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal


def utf8_len(text: str) -> int:
    """``text``'s size in UTF-8 (lone surrogates counted as encoded). ``isascii`` answers
    from the string's header without a scan, so ASCII text, the common case, is not
    encoded just to be measured."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox: an addr-spec and an optional display name (no CR/LF: validated upstream)."""

    email: str
    name: str = ""

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2].lower()


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file carried by the message. ``disposition`` inline parts are referenced by cid."""

    content: bytes
    filename: str
    mimetype: str = "application/octet-stream"
    disposition: Literal["attachment", "inline"] = "attachment"
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class MessageDraft:
    """Everything needed to build the MIME message and its deliveries."""

    sender: Address
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    reply_to: Address | None = None
    subject: str = ""
    text: str | None = None
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    custom_variables: dict[str, Any] = field(default_factory=dict)
    category: str | None = None
    template_uuid: str | None = None
    template_variables: dict[str, Any] | None = None
    # The client's own Message-ID and Date (API ``headers``, validated), used instead of
    # the ones Postroom would make.
    message_id: str | None = None
    date: datetime | None = None
    # A message submitted finished (SMTP): stored and delivered as these bytes, not built
    # from the fields above, which then only describe it (see domain/submitted.py).
    raw: bytes | None = None

    @property
    def recipients(self) -> list[tuple[str, Address]]:
        """Every recipient with its field, in the contract's to → cc → bcc order."""
        return (
            [("to", a) for a in self.to]
            + [("cc", a) for a in self.cc]
            + [("bcc", a) for a in self.bcc]
        )
