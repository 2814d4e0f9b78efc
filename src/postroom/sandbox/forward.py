"""Forward a captured sandbox message to an address, through the installation's delivery.

The stored message goes in again by the one way in (:func:`accept_message`), exactly as
an SMTP client submitting those bytes to that one recipient would: Bcc and Postroom's
X-MT-* headers removed, the message's own From kept. So everything that governs sending
governs forwarding too: the account's delivery mode (in sandbox mode the forward is
captured again, nothing leaves), the verified-From rule when mail leaves for real (a
message whose From domain the account has not verified is refused, as its own send
would be), suppressions, size limits and the event log. Each accepted forward is
recorded in the copy's own transaction (the inbox's ``forwarded_messages_count``).
Mailtrap asks recipients to confirm before they get forwards; Postroom's equivalent is
that only a caller with the ``send`` and ``read`` scopes, sending as the account, can
forward.
"""

from __future__ import annotations

from postroom.domain.addresses import is_valid_email
from postroom.domain.rawmail import Unacceptable
from postroom.domain.streams import Stream
from postroom.domain.submitted import Refused, parse_submission
from postroom.errors import ValidationFailed
from postroom.sandbox import messages
from postroom.services import Services
from postroom.services.accept import Origin
from postroom.services.resend import send_as_account

FORWARDED = "Your email message has been successfully forwarded"


def recipient(body: object) -> str:
    """The ``email`` of a forward request body, checked."""
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or not email.strip():
        raise ValidationFailed(["email can't be blank"])
    email = email.strip()
    if len(email) > 320 or not is_valid_email(email):
        raise ValidationFailed(["email is invalid"])
    return email


async def forward(
    services: Services,
    account_id: int,
    ids: tuple[int, int],
    email: str,
    client_ip: str | None,
) -> list[str]:
    """Send message ``ids`` (inbox, message) of ``account_id`` to ``email``; its message ids."""
    inbox_id, message_id = ids
    _, raw = await messages.read_part(services, account_id, inbox_id, message_id, bytes)
    limits = services.settings.limits
    try:
        draft = parse_submission(
            raw,
            [email],
            max_custom_variables_bytes=limits.max_custom_variables_bytes,
            max_category_chars=limits.max_category_chars,
            limits=services.raw_limits(),
        )
    except (Refused, Unacceptable) as exc:
        raise ValidationFailed([f"the message cannot be forwarded: {exc}"]) from None
    origin = Origin(account_id, Stream.TRANSACTIONAL, client_ip, forwarded_from=inbox_id)
    return await send_as_account(services, origin, draft, doing="forwarded")
