"""Webhooks, the pure parts: which events go out, their payloads, signatures and URL rules.

- :func:`wants_outbox`: whether a recorded event may reach a webhook at all (sandbox
  sends never do, spec §5.3; ``accepted`` and domain lifecycle events have no payload).
- :func:`matches`: whether one webhook wants one event (type, stream, domain, event types,
  inbox).
- :func:`event_payload` / :func:`render_body`: the delivered JSON of spec §5.3, batched as
  ``{"events": [...]}`` (json) or one object per line (jsonlines).
- :func:`mailtrap_signature` (spec §5.4: lowercase hex HMAC-SHA256 of the body, keyed
  with the secret's UTF-8 bytes) and :func:`standard_signature` (Standard Webhooks:
  ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``, keyed with the same bytes, whose
  ``whsec_`` form :func:`standard_secret` gives).
- :func:`url_refusal`: the static checks of a webhook URL (scheme, credentials, port,
  numeric host spellings); the address checks happen at connect time in
  :mod:`postroom.services.egress`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from postroom.domain.events import EventKind


class WebhookType(StrEnum):
    """What a webhook subscribes to (the spec's enum; ``campaigns`` is not offered)."""

    EMAIL_SENDING = "email_sending"
    AUDIT_LOG = "audit_log"
    INBOUND_RECEIVING = "inbound_receiving"


class PayloadFormat(StrEnum):
    JSON = "json"
    JSONLINES = "jsonlines"


# The sending events of spec §5.2, in configuration spelling.
SENDING_KINDS = (
    EventKind.DELIVERY,
    EventKind.SOFT_BOUNCE,
    EventKind.BOUNCE,
    EventKind.SUSPENSION,
    EventKind.UNSUBSCRIBE,
    EventKind.OPEN,
    EventKind.SPAM,
    EventKind.CLICK,
    EventKind.REJECT,
)
CONFIG_NAMES = tuple(kind.config_name for kind in SENDING_KINDS)
_OUTBOX_KINDS = frozenset(
    {*(k.value for k in SENDING_KINDS), EventKind.AUDIT.value, EventKind.INBOUND_RECEIVED.value}
)


def wants_outbox(kind: str, details: Mapping[str, Any]) -> bool:
    """Whether an event of ``kind`` may be delivered by some webhook (sandbox mail: never)."""
    return kind in _OUTBOX_KINDS and details.get("mode") != "sandbox"


def matcher(webhook: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """A fast predicate: does ``webhook`` (a ``webhooks`` row) want an event?

    The event carries the ``events`` columns plus ``sending_domain_id`` (its message's
    sending domain, None when unknown). Built once per webhook and batch round.
    """
    wtype = webhook["webhook_type"]
    if wtype == WebhookType.AUDIT_LOG.value:
        return lambda event: event["kind"] == EventKind.AUDIT.value
    if wtype == WebhookType.INBOUND_RECEIVING.value:
        inbox = webhook["inbound_inbox_id"]
        return lambda event: (
            event["kind"] == EventKind.INBOUND_RECEIVED.value
            and inbox is not None
            and (event.get("details") or {}).get("inbox_id") == inbox
        )
    if wtype != WebhookType.EMAIL_SENDING.value:
        return lambda event: False
    kinds = frozenset(
        kind.value for kind in SENDING_KINDS if kind.config_name in (webhook["event_types"] or [])
    )
    stream, domain = webhook["sending_stream"], webhook["domain_id"]

    def wants(event: Mapping[str, Any]) -> bool:
        return (
            event["kind"] in kinds
            and (not stream or event["stream"] == stream)
            and (domain is None or event.get("sending_domain_id") == domain)
        )

    return wants


def matches(webhook: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether ``webhook`` wants ``event`` (see :func:`matcher`)."""
    return matcher(webhook)(event)


def _unix(value: datetime) -> int:
    return int(value.timestamp())


def event_payload(event: Mapping[str, Any], message: Mapping[str, Any] | None) -> dict[str, Any]:
    """One delivered event, spec §5.3 (audit and inbound events: their details).

    ``event`` is an ``events`` row; ``message`` the facts of its message: ``message_id``
    (the contract's id of the recipient's copy is the event's ``message_id``), ``category``,
    ``custom_variables``, ``sending_domain_name``.
    """
    kind = EventKind(str(event["kind"]))
    details: Mapping[str, Any] = event.get("details") or {}
    stamp = _unix(event["created_at"])
    if kind is EventKind.AUDIT:
        audit = {k: v for k, v in details.items() if k != "mode"}
        return {"event": audit.pop("event", "activity_log"), **audit, "timestamp": stamp}
    if kind is EventKind.INBOUND_RECEIVED:
        return {
            "event": kind.value,
            "event_id": event["event_id"],
            "timestamp": stamp,
            **details,
        }
    message = message or {}
    body: dict[str, Any] = {
        "event": kind.payload_name,
        "message_id": event["message_id"],
        "email": event["recipient"],
        "event_id": event["event_id"],
        "timestamp": stamp,
        "sending_stream": event["stream"],
        "sending_domain_name": message.get("sending_domain_name") or "",
    }
    if message.get("category"):
        body["category"] = message["category"]
    if message.get("custom_variables"):
        body["custom_variables"] = message["custom_variables"]
    if kind in (EventKind.BOUNCE, EventKind.SOFT_BOUNCE):
        body["response"] = str(details.get("response") or "")
        code = details.get("response_code")
        body["response_code"] = int(code) if isinstance(code, int) else 0
        body["bounce_category"] = str(details.get("bounce_category") or "")
    elif kind is EventKind.DELIVERY and details.get("response"):
        body["response"] = str(details["response"])
    if kind in (EventKind.REJECT, EventKind.SUSPENSION):
        body["reason"] = str(details.get("reject_reason") or details.get("reason") or "")
    if kind in (EventKind.OPEN, EventKind.CLICK, EventKind.UNSUBSCRIBE):
        body["ip"] = str(details.get("ip") or "")
        body["user_agent"] = str(details.get("user_agent") or "")
    if kind is EventKind.CLICK:
        body["url"] = str(details.get("url") or "")
    return body


def render_body(payloads: Iterable[Mapping[str, Any]], payload_format: str) -> bytes:
    """The POST body: ``{"events": [...]}`` or JSON Lines (one object per line)."""
    if payload_format == PayloadFormat.JSONLINES.value:
        lines = [json.dumps(p, separators=(",", ":"), ensure_ascii=False) for p in payloads]
        return ("\n".join(lines) + "\n").encode()
    body = {"events": list(payloads)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def mailtrap_signature(secret: str, body: bytes) -> str:
    """``Mailtrap-Signature``: lowercase hex HMAC-SHA256(secret as UTF-8, body) (§5.4)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_secret(secret: str) -> str:
    """The same secret in Standard Webhooks' ``whsec_<base64>`` form, for their verifiers."""
    return "whsec_" + base64.b64encode(secret.encode()).decode()


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature``: ``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


# --- URLs ---------------------------------------------------------------------------------

_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
_CANONICAL_IPV4 = re.compile(r"^(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}$")
MAX_URL_CHARS = 2048


def url_refusal(url: str, allowed_ports: Iterable[int] = ()) -> str | None:
    """Why ``url`` may not be a webhook URL, or None. Static checks only:

    http or https; a host; no control characters or spaces; a port in ``allowed_ports``
    (any when empty); an IPv4 host only in canonical dotted decimal (``2130706433``,
    ``0x7f000001``, ``0177.0.0.1`` and ``127.1`` are what a browser or ``inet_aton`` would
    call 127.0.0.1; they are refused, never guessed at); no IPv6 literal that carries an
    IPv4 address (``[::ffff:127.0.0.1]``, ``[::127.0.0.1]``) and none with a zone id.
    Whether the address is public is decided when connecting, for every address the name
    resolves to.
    """
    if len(url) > MAX_URL_CHARS:
        return f"longer than {MAX_URL_CHARS} characters"
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        return "contains spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "only http and https URLs are allowed"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return "has no host"
    if "\\" in parts.netloc:
        return "has a backslash in its host"
    allowed = list(allowed_ports)
    effective = port if port is not None else (443 if parts.scheme.lower() == "https" else 80)
    if allowed and effective not in allowed:
        return f"port {effective} is not allowed (allowed: {', '.join(map(str, allowed))})"
    return _host_refusal(host)


def _host_refusal(host: str) -> str | None:
    if ":" in host:  # an IPv6 literal (urlsplit strips the brackets)
        if "%" in host:
            return "IPv6 zone ids are not allowed"
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            return "not a valid IPv6 address"
        if address.ipv4_mapped is not None or (int(address) >> 32 == 0 and int(address) > 1):
            return "IPv4-mapped and IPv4-compatible IPv6 addresses are not allowed"
        return None
    labels = host.split(".")
    # WHATWG URL: a host whose last label is a number is an IPv4 address; only the
    # canonical dotted-decimal spelling is accepted.
    if _NUMERIC_LABEL.match(labels[-1]) and (
        not _CANONICAL_IPV4.match(host) or any(int(x) > 255 for x in labels)
    ):
        return "IPv4 addresses must be written as four decimal numbers (a.b.c.d)"
    return None
