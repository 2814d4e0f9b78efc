"""Per-recipient copies: a recipient's tracking opt-out only matters when the body changes
(personalize.prepare looks the opt-out list up for those copies alone)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from postroom.domain.linkrewrite import UNSUBSCRIBE_PLACEHOLDER
from postroom.domain.messages import Address, MessageDraft
from postroom.domain.mime import build_message
from postroom.mta import personalize
from postroom.services import Services, tracking

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _message(html: str, stream: str, template: bool) -> dict[str, Any]:
    draft = MessageDraft(
        sender=Address("receipts@shop.example", "Shop"),
        to=(Address("ana@dest.example"),),
        subject="Receipt",
        text=f"Thanks. Leave: {UNSUBSCRIBE_PLACEHOLDER}\r\nhttps://shop.example/help\r\n",
        html=html,
    )
    raw = build_message(draft, message_id="m1@shop.example", date=NOW)
    return {
        "id": "m1",
        "account_id": 1,
        "sender": "receipts@shop.example",
        "stream": stream,
        "template_id": 7 if template else None,
        "raw": raw,
    }


def test_the_opt_out_changes_nothing_when_the_body_does_not_change(services: Services) -> None:
    html = (
        '<html><body><p><a href="https://shop.example/a">a</a> '
        f'<a href="{UNSUBSCRIBE_PLACEHOLDER}">leave</a></p></body></html>'
    )
    delivery = {
        "id": "0b6d2f0e-4a1c-4f3e-9d52-5c3f0e1a2b3c",
        "message_id": "m1",
        "recipient": "ana@dest.example",
    }
    cfg = services.settings
    no_base = cfg.model_copy(
        update={"tracking": cfg.tracking.model_copy(update={"port": 0, "base_url": None})}
    )
    names = (
        "open_tracking_enabled",
        "click_tracking_enabled",
        "auto_unsubscribe_link_enabled",
        "tracking_opt_out_enabled",
        "list_unsubscribe_transactional_enabled",
    )
    differed = 0
    for settings, flags in itertools.product((cfg, no_base), itertools.product((0, 1), repeat=5)):
        row = {"id": 1, "domain_name": "shop.example", "custom_domain_tracking_enabled": False}
        policy = tracking.domain_tracking(
            settings, "shop.example", {**row, **dict(zip(names, flags, strict=True))}
        )
        for stream, template in itertools.product(("transactional", "bulk"), (False, True)):
            message = _message(html, stream, template)
            prepared = personalize._prepare(services, message, policy)
            if prepared is None:
                continue
            delivery["stream"] = stream
            tracked = prepared.copy(services, delivery, True, NOW)
            untracked = prepared.copy(services, delivery, False, NOW)
            if not policy.changes_body:
                assert tracked == untracked, (policy, stream, template)
            differed += tracked != untracked
    assert differed  # with opens or clicks on, the opt-out does change the copy
