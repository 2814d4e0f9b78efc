"""Sending mail Postroom composes for an account: forwards and replies.

A sandbox message forwarded to an address (:mod:`postroom.sandbox.forward`), an inbound
message answered or forwarded through the API (:mod:`postroom.services.inbound_replies`)
or by a forward rule (:mod:`postroom.services.inbound_rules`) all enter by the one way
in, :func:`~postroom.services.accept.accept_message`, as the account: its delivery mode,
quotas, suppressions, size limits and event log apply, and so does the verified-From
rule. That rule's refusal (401 on the sending API) is a 422 here, saying why: the caller
did not choose the From of a message it did not write.
"""

from __future__ import annotations

from postroom.domain.messages import MessageDraft
from postroom.errors import Unauthorized, ValidationFailed
from postroom.services import Services
from postroom.services.accept import Origin, accept_message

UNVERIFIED = (
    "the message's From domain is not a verified sending domain of this account, "
    "so it cannot be {doing} for real delivery"
)


async def send_as_account(
    services: Services, origin: Origin, draft: MessageDraft, *, doing: str
) -> list[str]:
    """Accept ``draft`` for ``origin``; its message ids. ``doing`` ("forwarded", "sent")
    completes the refusal of an unverified From."""
    try:
        return await accept_message(services, origin, draft)
    except Unauthorized:
        raise ValidationFailed([UNVERIFIED.format(doing=doing)]) from None
