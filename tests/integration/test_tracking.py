"""Tracking end to end in one process: a real name server, a real SMTP receiver, the
tracking app, and the stats, logs and suppressions it feeds.

``shop.example`` is verified (DKIM keys published in tests/dnsserver.py) with open and
click tracking on; mail goes in ``mx`` mode to an aiosmtpd receiver on 127.0.0.2. What
the receiver got is parsed, its DKIM signature checked with dkimpy (the oracle), and
its tracking URLs are requested from the tracking app (Starlette's TestClient) the way a
recipient's mail client would.
"""

from __future__ import annotations

import asyncio
import email
import json
import re
import smtplib
from collections.abc import Iterator
from email.message import Message
from typing import Any

import dkim as dkimpy  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from dnsserver import LocalDnsServer
from postroom.api.tracking import create_tracking_app
from postroom.clock import FrozenClock
from postroom.config import DeliveryMode
from postroom.inbound import listener
from postroom.mta import listen
from postroom.services import Services, rollups
from postroom.services.accounts import Bootstrap
from postroom.services.dns import DnsPythonResolver
from postroom.storage.tables import deliveries, events, suppressions, tracked_links
from postroom.workers.delivery import DeliveryWorker
from postroom.workers.webhooks import WebhookDispatcher
from smtppeers import Receivers
from webhookreceiver import WebhookReceiver

SHOP = "shop.example"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"
GOOGLE_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via GoogleImageProxy)"
HTML = (
    "<html><body><p>Hello &amp; welcome.</p>"
    '<a href="https://example.org/a?x=1&amp;y=2">one</a> '
    "<a href='http://example.org/b'>two</a> "
    '<a href="mailto:help@shop.example">mail</a> <a href="#top">top</a> '
    '<a data-pr-notrack href="https://example.org/private">kept</a>'
    '<!-- <a href="https://example.org/hidden">x</a> -->'
    "</body></html>"
)
# The domain's own tracking host: the published records include its tracking CNAME.
TRACK = "https://pr-track.shop.example"


def _urls(text: str, kind: str) -> list[str]:
    return re.findall(rf"{re.escape(TRACK)}/{kind}/[a-z2-7]{{56}}", text)


@pytest.fixture
def mx(services: Services, dns_server: LocalDnsServer) -> Iterator[Receivers]:
    receivers = Receivers()
    receivers.start("127.0.0.2")
    dns_server.add_mx("dest.example", 10, "mx1.dest.example")
    dns_server.add_a("mx1.dest.example", "127.0.0.2")
    services.resolver = DnsPythonResolver(dns_server.address, timeout=1.0)
    services.clock = FrozenClock()
    cfg = services.settings.delivery
    cfg.port = receivers.port
    cfg.connect_timeout, cfg.command_timeout = 2.0, 5.0
    services.settings.domains.rsa_bits = 1024
    yield receivers
    receivers.close()


@pytest.fixture
def shop(client: TestClient, boot: Bootstrap, dns_server: LocalDnsServer, mx: Receivers) -> int:
    base = f"/api/accounts/{boot.account_id}/sending_domains"
    domain = client.post(base, json={"sending_domain": {"domain_name": SHOP}}).json()
    dns_server.publish(domain["dns_records"])
    assert client.post(f"{base}/{domain['id']}/verify").json()["dns_verified"] is True
    flags = {"open_tracking_enabled": True, "click_tracking_enabled": True}
    patched = client.patch(f"{base}/{domain['id']}", json={"sending_domain": flags})
    assert patched.status_code == 200 and patched.json()["click_tracking_enabled"] is True
    return int(domain["id"])


def _send(client: TestClient, services: Services, to: str, **extra: Any) -> str:
    body = {
        "from": {"email": f"news@{SHOP}"},
        "to": [{"email": to}],
        "subject": "Hello",
        "html": HTML,
        "text": "Hello, see https://example.org/a",
        **extra,
    }
    response = client.post("/api/send", json=body)
    assert response.status_code == 200, response.text
    services.settings.delivery.mode = DeliveryMode.MX
    [delivery_id] = response.json()["message_ids"]
    return str(delivery_id)


def _deliver(services: Services) -> None:
    asyncio.run(DeliveryWorker(services).run_once())


def _received(mx: Receivers) -> tuple[bytes, Message]:
    _, _, raw = mx.primary.received[-1]
    return raw, email.message_from_bytes(raw)


def _part(message: Message, subtype: str) -> str:
    for part in message.walk():
        if part.get_content_type() == f"text/{subtype}":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no text/{subtype} part")


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def _events(services: Services, kind: str) -> list[dict[str, Any]]:
    query = select(events).where(events.c.kind == kind).order_by(events.c.id)
    return [dict(r) for r in services.db.read_sync(lambda c: c.execute(query).mappings().all())]


def _tracker(services: Services) -> TestClient:
    return TestClient(create_tracking_app(services), base_url=TRACK)


def test_links_are_rewritten_signed_and_lead_to_the_original_urls(
    client: TestClient, services: Services, shop: int, mx: Receivers, dns_server: LocalDnsServer
) -> None:
    delivery_id = _send(client, services, "ana@dest.example")
    _deliver(services)
    raw, message = _received(mx)
    assert dkimpy.DKIM(raw).verify(idx=0, dnsfunc=dns_server.dkim_dnsfunc())
    html = _part(message, "html")
    # Tracked: the two http(s) links; kept: mailto, the fragment, the opted-out link, the
    # commented one; the rest of the HTML is unchanged.
    assert "example.org/a" not in html and "example.org/b'" not in html
    assert 'href="mailto:help@shop.example"' in html and 'href="#top"' in html
    assert 'data-pr-notrack href="https://example.org/private"' in html
    assert '<!-- <a href="https://example.org/hidden">x</a> -->' in html
    clicks = _urls(html, "c")
    [pixel] = _urls(html, "o")
    assert len(clicks) == 2
    assert "https://example.org/a" in _part(message, "plain")  # text links kept by default
    # List-Unsubscribe only on bulk mail (this is transactional, no domain opt-in).
    assert message["List-Unsubscribe"] is None

    stored = services.db.read_sync(lambda c: c.execute(select(tracked_links)).mappings().all())
    assert sorted(r["url"] for r in stored) == [
        "http://example.org/b",
        "https://example.org/a?x=1&y=2",
    ]

    services.clock.advance(60)  # type: ignore[attr-defined]
    with _tracker(services) as tracker:
        targets = []
        for url in clicks:
            answer = tracker.get(_path(url), headers={"User-Agent": CHROME}, follow_redirects=False)
            assert answer.status_code == 302
            targets.append(answer.headers["location"])
        assert targets == ["https://example.org/a?x=1&y=2", "http://example.org/b"]
        opened = tracker.get(_path(pixel), headers={"User-Agent": CHROME})
        assert opened.status_code == 200 and opened.headers["content-type"] == "image/gif"
        tracker.get(_path(pixel), headers={"User-Agent": CHROME})

    opens, clicked = _events(services, "open"), _events(services, "click")
    assert [e["message_id"] for e in opens + clicked] == [delivery_id] * 4
    assert [e["details"]["unique"] for e in opens] == [True, False]
    assert [e["details"]["unique"] for e in clicked] == [True, False]
    first = clicked[0]["details"]
    assert first["url"] == "https://example.org/a?x=1&y=2"
    assert first["user_agent"] == CHROME and first["ip"] == "testclient"
    assert first["machine"] is None


def test_machines_are_flagged_and_counted_apart(
    client: TestClient, boot: Bootstrap, services: Services, shop: int, mx: Receivers
) -> None:
    delivery_id = _send(client, services, "ana@dest.example")
    _deliver(services)
    _, message = _received(mx)
    html = _part(message, "html")
    clicks = _urls(html, "c")
    [pixel] = _urls(html, "o")
    with _tracker(services) as tracker:
        # A gateway follows the link the moment the message arrives.
        tracker.get(_path(clicks[0]), headers={"User-Agent": CHROME}, follow_redirects=False)
        services.clock.advance(60)  # type: ignore[attr-defined]
        tracker.get(_path(pixel), headers={"User-Agent": "Mozilla/5.0"})  # Apple MPP
        tracker.get(_path(clicks[1]), headers={"User-Agent": "Mimecast Security Scanner"})
        tracker.head(_path(clicks[0]), headers={"User-Agent": CHROME})
        tracker.get(_path(pixel), headers={"User-Agent": GOOGLE_PROXY})
    machines = [(e["kind"], e["details"]["machine"]) for e in _events(services, "click")]
    assert machines == [("click", "prefetch"), ("click", "scanner"), ("click", "prefetch")]
    opens = [e["details"] for e in _events(services, "open")]
    assert [(o["machine"], o["proxy"], o["unique"]) for o in opens] == [
        ("apple_mpp", None, False),
        (None, "google", True),
    ]

    services.clock.advance(5)  # type: ignore[attr-defined]  (past the settle time)
    asyncio.run(rollups.consume(services))
    day = services.clock.now().date().isoformat()
    stats = client.get(
        f"/api/accounts/{boot.account_id}/stats?start_date={day}&end_date={day}"
    ).json()
    assert stats["open_count"] == 1 and stats["click_count"] == 0
    assert stats["machine_open_count"] == 1 and stats["machine_click_count"] == 3
    logged = client.get(f"/api/accounts/{boot.account_id}/email_logs/{delivery_id}").json()
    assert logged["opens_count"] == 1 and logged["clicks_count"] == 0
    shown = [e for e in logged["events"] if e["event_type"] == "click"]
    assert shown[0]["details"]["click_url"] == "https://example.org/a?x=1&y=2"
    assert shown[0]["details"]["web_ip_address"] == "testclient"
    assert shown[1]["details"]["machine"] == "scanner"


def test_forged_and_altered_tokens_lead_nowhere(
    client: TestClient, services: Services, shop: int, mx: Receivers
) -> None:
    _send(client, services, "ana@dest.example")
    _deliver(services)
    _, message = _received(mx)
    [click, _] = [u.rsplit("/", 1)[1] for u in _urls(_part(message, "html"), "c")]
    [opening] = [u.rsplit("/", 1)[1] for u in _urls(_part(message, "html"), "o")]
    with _tracker(services) as tracker:
        for i in range(len(click)):
            flipped = "a" if click[i] != "a" else "b"
            altered = click[:i] + flipped + click[i + 1 :]
            assert tracker.get(f"/c/{altered}", follow_redirects=False).status_code == 404
        # A valid token of another kind, a valid token on another path, garbage, and a
        # query-string target: none redirects.
        assert tracker.get(f"/c/{opening}", follow_redirects=False).status_code == 404
        assert tracker.get(f"/u/{click}").status_code == 404
        assert (
            tracker.get("/c/x?url=https://evil.example", follow_redirects=False).status_code == 404
        )
        assert (
            tracker.get(f"/c/{click}?url=https://evil.example", follow_redirects=False)
            .headers["location"]
            .startswith("https://example.org/a")
        )
        assert tracker.get("/").status_code == 404
        for odd in (f"/c/{click}/", f"/c/{click}%2F", "/c/0%2F", "//evil.example/"):
            assert tracker.get(odd, follow_redirects=False).status_code == 404
    assert _events(services, "click")[0]["details"]["url"] == "https://example.org/a?x=1&y=2"
    assert len(_events(services, "click")) == 1


def test_a_token_works_only_on_its_own_domains_tracking_host(
    client: TestClient, services: Services, shop: int, mx: Receivers
) -> None:
    _send(client, services, "ana@dest.example")
    _deliver(services)
    _, message = _received(mx)
    [click, _] = [_path(u)[1:] for u in _urls(_part(message, "html"), "c")]
    with _tracker(services) as tracker:
        own = tracker.get(
            f"/{click}", headers={"Host": "pr-track.shop.example"}, follow_redirects=False
        )
        other = tracker.get(
            f"/{click}", headers={"Host": "pr-track.other.example"}, follow_redirects=False
        )
    assert own.status_code == 302 and other.status_code == 404


def test_bulk_mail_gets_one_click_unsubscribe_that_suppresses_the_recipient(
    client: TestClient,
    services: Services,
    shop: int,
    mx: Receivers,
    boot: Bootstrap,
    dns_server: LocalDnsServer,
) -> None:
    response = client.post(
        "/api/send",
        headers={"Host": "bulk.api.mailtrap.io"},
        json={"from": {"email": f"news@{SHOP}"}, "to": [{"email": "bo@dest.example"}],
              "subject": "News", "text": "Read on.", "html": "<p>Read on.</p>"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    services.settings.delivery.mode = DeliveryMode.MX
    _deliver(services)
    raw, message = _received(mx)
    assert dkimpy.DKIM(raw).verify(idx=0, dnsfunc=dns_server.dkim_dnsfunc())
    signed = [s for s in re.findall(rb"h=([^;]+);", raw.replace(b"\r\n ", b"")) if s]
    assert b"list-unsubscribe:list-unsubscribe-post" in signed[0].replace(b" ", b"")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    mailto, https = re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))
    assert mailto.startswith("mailto:u+") and mailto.endswith("@pr-bounces.shop.example")
    with _tracker(services) as tracker:
        page = tracker.get(_path(https))
        assert page.status_code == 200 and '<form method="post">' in page.text
        assert _events(services, "unsubscribe") == []  # a GET never unsubscribes
        done = tracker.post(_path(https), data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200
        tracker.post(_path(https), data={"List-Unsubscribe": "One-Click"})  # once is enough
    [event] = _events(services, "unsubscribe")
    assert event["details"]["source"] == "one-click"
    rows = services.db.read_sync(lambda c: c.execute(select(suppressions)).mappings().all())
    assert [(r["email"], r["type"], r["domain_name"], r["sending_stream"]) for r in rows] == [
        ("bo@dest.example", "unsubscription", SHOP, "bulk")
    ]
    again = client.post(
        "/api/send",
        headers={"Host": "bulk.api.mailtrap.io"},
        json={"from": {"email": f"news@{SHOP}"}, "to": [{"email": "bo@dest.example"}],
              "subject": "More", "text": "x"},
    )  # fmt: skip
    [later] = again.json()["message_ids"]
    state = services.db.read_sync(
        lambda c: c.execute(select(deliveries.c.state).where(deliveries.c.id == later)).scalar()
    )
    assert state == "suppressed"


def test_mailto_unsubscribe_through_the_inbound_listener(
    client: TestClient, services: Services, shop: int, mx: Receivers
) -> None:
    body = {"from": {"email": f"news@{SHOP}"}, "to": [{"email": "cy@dest.example"}],
            "subject": "News", "text": "Read on."}  # fmt: skip
    assert client.post("/api/send", json=body, headers={"Host": "bulk.x"}).status_code == 200
    services.settings.delivery.mode = DeliveryMode.MX
    _deliver(services)
    _, message = _received(mx)
    mailto = re.findall(r"<mailto:([^>]+)>", str(message["List-Unsubscribe"]))[0]

    async def run() -> None:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.setblocking(False)
        server = await listener.start(services, sock)
        port = sock.getsockname()[1]
        try:
            await asyncio.to_thread(_mail, port, mailto)
        finally:
            await listen.stop([server])

    asyncio.run(run())
    [event] = _events(services, "unsubscribe")
    assert event["details"]["source"] == "mailto" and event["recipient"] == "cy@dest.example"


def _mail(port: int, to: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("cy@dest.example", [to], b"Subject: unsubscribe\r\n\r\nplease\r\n")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            forged = "u+" + "a" * 56 + "@pr-bounces.shop.example"
            smtp.sendmail("x@dest.example", [forged], b"Subject: x\r\n\r\nx\r\n")


def test_an_opted_out_recipient_is_not_tracked(
    client: TestClient, boot: Bootstrap, services: Services, shop: int, mx: Receivers
) -> None:
    created = client.post(
        "/api/tracking_opt_outs", json={"email": "Ana@dest.example", "domain_id": shop}
    )
    assert created.status_code == 201, created.text
    entry = created.json()["data"]
    assert entry["email"] == "ana@dest.example" and entry["domain_name"] == SHOP
    listed = client.get("/api/tracking_opt_outs").json()
    assert listed == {"data": [entry], "last_id": None}
    _send(client, services, "ana@dest.example")
    _deliver(services)
    _, message = _received(mx)
    html = _part(message, "html")
    assert 'href="https://example.org/a?x=1&amp;y=2"' in html and "/o/" not in html
    assert client.delete(f"/api/tracking_opt_outs/{entry['id']}").json() == entry
    assert client.get("/api/tracking_opt_outs").json()["data"] == []


def test_footer_links_template_unsubscribe_url_and_the_opt_out_page(
    client: TestClient, boot: Bootstrap, services: Services, shop: int, mx: Receivers
) -> None:
    base = f"/api/accounts/{boot.account_id}/sending_domains/{shop}"
    flags = {"auto_unsubscribe_link_enabled": True, "tracking_opt_out_enabled": True}
    assert client.patch(base, json={"sending_domain": flags}).status_code == 200
    template = client.post(
        f"/api/accounts/{boot.account_id}/email_templates",
        json={"email_template": {"name": "t", "subject": "Hi {{name}}", "category": "news",
              "body_html": '<p>Hi</p><a href="{{unsubscribe_url}}">leave</a>'}},
    ).json()  # fmt: skip
    _send(client, services, "ana@dest.example")  # footer in both parts
    body = {"from": {"email": f"news@{SHOP}"}, "to": [{"email": "bo@dest.example"}],
            "template_uuid": template["uuid"], "template_variables": {"name": "Bo"}}  # fmt: skip
    assert client.post("/api/send", json=body).status_code == 200
    _deliver(services)
    [(_, _, plain_raw), (_, _, template_raw)] = sorted(
        mx.primary.received, key=lambda item: item[1][0]
    )
    first = email.message_from_bytes(plain_raw)
    html, text = _part(first, "html"), _part(first, "plain")
    [unsubscribe] = _urls(html, "u")
    [opt_out] = _urls(html, "t")
    assert f"Unsubscribe: {unsubscribe}" in text and f"{opt_out}" in text
    assert html.index(opt_out) < html.index("</body>")

    templated = _part(email.message_from_bytes(template_raw), "html")
    [own] = _urls(templated, "u")
    assert f'<a href="{own}">leave</a>' in templated and "postroom.invalid" not in templated
    assert templated.count("/u/") == 1  # the template's link: no second, automatic one

    with _tracker(services) as tracker:
        page = tracker.get(_path(opt_out))
        assert page.status_code == 200 and "Content-Security-Policy" in page.headers
        assert tracker.post(_path(opt_out)).status_code == 200
    listed = client.get("/api/tracking_opt_outs").json()["data"]
    assert [(o["email"], o["domain_name"]) for o in listed] == [("ana@dest.example", SHOP)]


def test_opens_clicks_and_unsubscribes_reach_webhooks(
    client: TestClient, services: Services, shop: int, mx: Receivers
) -> None:
    """A recipient's real requests to the tracking listener become webhook events in the
    contract's shape (spec §5): open and click with ip and user agent, click with its
    URL, unsubscribe; each once."""
    services.settings.webhooks.allowed_networks = ["127.0.0.0/8"]  # the receiver's loopback
    services.settings.webhooks.allowed_ports = []
    with WebhookReceiver() as receiver:
        hook = {"url": receiver.url, "webhook_type": "email_sending", "sending_stream": "bulk",
                "event_types": ["open", "click", "unsubscribe"]}  # fmt: skip
        assert client.post("/api/webhooks", json={"webhook": hook}).status_code == 200
        sent = client.post(
            "/api/send",
            headers={"Host": "bulk.api.mailtrap.io"},
            json={"from": {"email": f"news@{SHOP}"}, "to": [{"email": "wh@dest.example"}],
                  "subject": "News", "html": HTML, "category": "news"},
        )  # fmt: skip
        assert sent.status_code == 200, sent.text
        [delivery_id] = sent.json()["message_ids"]
        services.settings.delivery.mode = DeliveryMode.MX
        _deliver(services)
        _, message = _received(mx)
        html = _part(message, "html")
        https = re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))[1]
        services.clock.advance(60)  # type: ignore[attr-defined]
        with _tracker(services) as tracker:
            tracker.get(_path(_urls(html, "o")[0]), headers={"User-Agent": CHROME})
            first = tracker.get(
                _path(_urls(html, "c")[0]), headers={"User-Agent": CHROME}, follow_redirects=False
            )
            assert first.status_code == 302
            tracker.post(_path(https), data={"List-Unsubscribe": "One-Click"})
        asyncio.run(WebhookDispatcher(services).run_once())
        got = [e for post in receiver.accepted() for e in json.loads(post.body)["events"]]
    assert sorted(e["event"] for e in got) == ["click", "open", "unsubscribe"]
    by_kind = {e["event"]: e for e in got}
    for event in got:
        assert event["message_id"] == delivery_id and event["email"] == "wh@dest.example"
        assert event["sending_stream"] == "bulk" and event["category"] == "news"
        assert event["sending_domain_name"] == SHOP and isinstance(event["timestamp"], int)
    assert by_kind["click"]["url"] == "https://example.org/a?x=1&y=2"
    assert by_kind["open"]["user_agent"] == CHROME and by_kind["click"]["ip"] == "testclient"


def test_template_unsubscribe_url_without_tracking_or_footer(
    client: TestClient, boot: Bootstrap, services: Services, shop: int, mx: Receivers
) -> None:
    """A domain that tracks nothing and adds no footer: the copy skips the HTML parse
    (personalize.py), yet the template's {{unsubscribe_url}} still becomes the recipient's
    own link, and the rest of the HTML is left as the template rendered it."""
    off = {"open_tracking_enabled": False, "click_tracking_enabled": False}
    base = f"/api/accounts/{boot.account_id}/sending_domains/{shop}"
    assert client.patch(base, json={"sending_domain": off}).status_code == 200
    template = client.post(
        f"/api/accounts/{boot.account_id}/email_templates",
        json={"email_template": {"name": "t", "subject": "Hi", "category": "news",
              "body_html": '<p>Hi <a href="https://example.org/a">a</a></p>'
                           '<a href="{{unsubscribe_url}}">leave</a>'}},
    ).json()  # fmt: skip
    body = {"from": {"email": f"news@{SHOP}"}, "to": [{"email": "bo@dest.example"}],
            "template_uuid": template["uuid"]}  # fmt: skip
    assert client.post("/api/send", json=body).status_code == 200
    services.settings.delivery.mode = DeliveryMode.MX
    _deliver(services)
    html = _part(_received(mx)[1], "html")
    [own] = _urls(html, "u")
    assert f'<a href="{own}">leave</a>' in html and "postroom.invalid" not in html
    assert '<a href="https://example.org/a">a</a>' in html and not _urls(html, "c")
