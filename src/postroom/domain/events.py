"""The single event vocabulary: one enum inside, the contract's spellings at the edges.

Mailtrap spells the same concept three ways (spec §5.2): the webhook payload
(``soft bounce``, ``spam``), webhook configuration (``soft_bounce``, ``spam_complaint``)
and the email-logs API (``soft_bounce``, ``spam``). Postroom stores :class:`EventKind`
values and converts only when it speaks to the outside. ``accepted`` is Postroom's own
(it has no Mailtrap spelling and is never sent in webhooks).
"""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """Everything that can happen to a message, once per recipient."""

    ACCEPTED = "accepted"
    DELIVERY = "delivery"
    SOFT_BOUNCE = "soft_bounce"
    BOUNCE = "bounce"
    SPAM = "spam"
    UNSUBSCRIBE = "unsubscribe"
    OPEN = "open"
    CLICK = "click"
    SUSPENSION = "suspension"
    REJECT = "reject"
    # Sending-domain lifecycle (postroom.services.domains). Postroom's own: no message, no
    # recipient, and no Mailtrap spelling (their payload/config names are the values).
    DOMAIN_VERIFIED = "domain_verified"
    DOMAIN_FAILED = "domain_failed"
    DKIM_PUBLISHED = "dkim_published"
    DKIM_ACTIVATED = "dkim_activated"
    DKIM_RETIRING = "dkim_retiring"
    DKIM_RETIRED = "dkim_retired"
    # Per-domain health alerts (postroom.services.alerts): no message, no recipient.
    ALERT_RAISED = "alert_raised"
    ALERT_CLEARED = "alert_cleared"
    # A soft sending quota reached 80 % or 100 % (postroom.services.quotas): no message.
    QUOTA_WARNING = "quota_warning"

    @property
    def payload_name(self) -> str:
        """The spelling in delivered webhook payloads (``event`` field)."""
        return _PAYLOAD_NAMES.get(self, self.value)

    @property
    def config_name(self) -> str:
        """The spelling in webhook configuration (``event_types``)."""
        return _CONFIG_NAMES.get(self, self.value)

    @property
    def log_name(self) -> str:
        """The spelling in the email-logs API (``event_type`` and filters)."""
        return self.value

    @classmethod
    def from_config_name(cls, name: str) -> EventKind:
        """Parse a webhook ``event_types`` entry."""
        for kind in cls:
            if kind.config_name == name:
                return kind
        raise ValueError(f"unknown event type: {name!r}")


_PAYLOAD_NAMES = {EventKind.SOFT_BOUNCE: "soft bounce"}
_CONFIG_NAMES = {EventKind.SPAM: "spam_complaint"}
