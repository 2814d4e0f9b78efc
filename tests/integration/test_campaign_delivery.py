"""A campaign delivered for real and its stats: a verified domain with open tracking, mail
in ``mx`` mode to an aiosmtpd receiver on loopback (tests/integration/test_tracking.py's
fixtures), the recipient's copy carrying List-Unsubscribe and a pixel, the pixel opened
the way a mail client would, and the campaign's stats counting the delivery and the open.
"""

from __future__ import annotations

import re
from datetime import timedelta

from starlette.testclient import TestClient
from test_tracking import CHROME, _deliver, _part, _path, _received, _tracker, _urls, mx, shop

from postroom.clock import FrozenClock
from postroom.config import DeliveryMode
from postroom.services import Services
from postroom.services.accounts import Bootstrap
from smtppeers import Receivers

__all__ = ["mx", "shop"]  # fixtures used by name

ALIAS = "/api/email_campaigns"


def test_stats_count_the_delivery_and_the_open(
    client: TestClient, boot: Bootstrap, services: Services, shop: int, mx: Receivers
) -> None:
    base = f"/api/accounts/{boot.account_id}/contacts"
    client.post(f"{base}/fields", json={"name": "Name", "data_type": "text", "merge_tag": "name"})
    news = client.post(f"{base}/lists", json={"name": "News"}).json()["id"]
    contact = {"email": "ann@dest.example", "fields": {"name": "Ann"}, "list_ids": [news]}
    assert client.post(base, json={"contact": contact}).status_code == 201
    made = client.post(
        ALIAS,
        json={
            "name": "Launch",
            "domain_id": shop,
            "from_local_part": "news",
            "template_attributes": {
                "subject": "For {{name}}",
                "body_html": '<html><body><p>Hi {{name}}</p><a href="__unsubscribe_url__">'
                "Unsubscribe</a></body></html>",
            },
            "contact_list_ids": [news],
        },
    ).json()["data"]
    services.settings.delivery.mode = DeliveryMode.MX
    started = client.post(f"{ALIAS}/{made['id']}/start")
    assert started.status_code == 200, started.text
    _deliver(services)
    _, message = _received(mx)
    assert message["Subject"] == "For Ann" and message["From"] == "news@shop.example"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = _part(message, "html")
    assert "Hi Ann" in html and "__unsubscribe_url__" not in html
    assert re.search(r'href="https://pr-track\.shop\.example/u/[a-z2-7]+"', html)
    [pixel] = _urls(html, "o")
    assert isinstance(services.clock, FrozenClock)
    services.clock.advance(60)
    with _tracker(services) as tracker:
        assert tracker.get(_path(pixel), headers={"User-Agent": CHROME}).status_code == 200
        tracker.get(_path(pixel), headers={"User-Agent": CHROME})  # counted once
    stats = client.get(f"{ALIAS}/{made['id']}/stats").json()["data"]
    assert stats["sent_count"] == 1 and stats["delivery_count"] == 1
    assert stats["open_count"] == 1 and stats["click_count"] == 0
    assert stats["delivery_rate"] == 1.0 and stats["open_rate"] == 1.0
    assert stats["bounce_count"] == stats["spam_count"] == stats["unsubscription_count"] == 0
    # The window: the day it all happened counts; the next day has nothing.
    day = services.clock.now().date()
    same = {"start_date": day.isoformat(), "end_date": day.isoformat()}
    assert client.get(f"{ALIAS}/{made['id']}/stats", params=same).json()["data"] == stats
    after = {"start_date": (day + timedelta(days=1)).isoformat()}
    later = client.get(f"{ALIAS}/{made['id']}/stats", params=after).json()["data"]
    assert later["delivery_count"] == later["open_count"] == later["sent_count"] == 0
