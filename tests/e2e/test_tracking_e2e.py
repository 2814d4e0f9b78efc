"""Tracking, done-when (issue F10): a real ``postroom serve --delivery-mode mx`` over HTTPS.

Mail goes through a real name server (tests/dnsserver.py) to an aiosmtpd receiver on
127.0.0.2. The test then acts as the recipient with real HTTP clients: httpx follows
every tracked link through the tracking listener (HTTPS, the instance's certificate) to
a landing server standing in for the sender's website, loads the open pixel, presents
forged and altered tokens (hypothesis), clicks as a security scanner would, and
unsubscribes with the RFC 8058 one-click POST. The stats and email logs (over the API,
and through the official SDK) show what happened, and a later send to the unsubscribed
address is not delivered. The receiver's copies are DKIM-checked with dkimpy.
"""

from __future__ import annotations

import email
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import quote

import dkim as dkimpy  # type: ignore[import-untyped]
import httpx
import mailtrap as mt
import mailtrap.client
import pytest
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server import Server, TlsFiles, start_server

from dnsserver import LocalDnsServer
from smtppeers import Receiver

pytestmark = pytest.mark.slow
T = TypeVar("T")

SHOP = "shop.test"
RECEIVER = "127.0.0.2"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"
TOKEN = r"[a-z2-7]{56}"


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Landing(BaseHTTPRequestHandler):
    """The sender's website: answers 200 and remembers every path asked for."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's hook name)
        Landing.seen.append(self.path)
        body = b"landed"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def landing() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Landing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Landing.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    handler = Receiver()
    port = free_port(RECEIVER)
    controller = Controller(handler, hostname=RECEIVER, port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def dns() -> Iterator[LocalDnsServer]:
    with LocalDnsServer() as server:
        server.add_mx("dest.test", 10, "mx.dest.test")
        server.add_a("mx.dest.test", RECEIVER)
        yield server


@pytest.fixture
def instance(
    tmp_path_factory: pytest.TempPathFactory,
    tls_files: TlsFiles,
    receiver: tuple[Receiver, int],
    dns: LocalDnsServer,
) -> Iterator[Server]:
    env = {
        "POSTROOM_DELIVERY__MODE": "mx",
        "POSTROOM_DNS__SERVER": dns.address,
        "POSTROOM_DELIVERY__PORT": str(receiver[1]),
        "POSTROOM_DOMAINS__RSA_BITS": "1024",
        "POSTROOM_SCHEDULER__INTERVAL": "0.3",
        "POSTROOM_INSIGHTS__STATS_SETTLE_SECONDS": "0",
        # The scripted recipient clicks faster than a person would.
        "POSTROOM_TRACKING__CLICK_AFTER_DELIVERY_SECONDS": "0.5",
        "POSTROOM_TRACKING__BURST_SECONDS": "0.2",
    }
    data_dir = tmp_path_factory.mktemp("tracking") / "data"
    server = start_server(data_dir, tls=(tls_files.cert_chain_pem, tls_files.key_pem), env=env)
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, server.output()


def _eventually(read: Callable[[], T], ok: Callable[[T], bool], seconds: float = 20) -> T:
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _verified_shop(api: httpx.Client, account: int, dns: LocalDnsServer) -> int:
    base = f"/api/accounts/{account}/sending_domains"
    domain = api.post(base, json={"sending_domain": {"domain_name": SHOP}}).json()
    # Everything but the tracking CNAME: links then point at the listener itself.
    dns.publish([r for r in domain["dns_records"] if r["key"] != "link_verification"])
    assert api.post(f"{base}/{domain['id']}/verify").json()["dns_verified"] is True
    flags = {"open_tracking_enabled": True, "click_tracking_enabled": True}
    assert api.patch(f"{base}/{domain['id']}", json={"sending_domain": flags}).status_code == 200
    return int(domain["id"])


def _received(handler: Receiver, rcpt: str, count: int = 1) -> list[bytes]:
    def mine() -> list[bytes]:
        return [raw for _, rcpts, raw in handler.received if rcpt in rcpts]

    found = _eventually(mine, lambda got: len(got) >= count)
    assert len(found) >= count, f"{rcpt}: {len(found)} received"
    return found


def _html(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no html part")


def test_tracking_done_when(
    instance: Server,
    tls_files: TlsFiles,
    receiver: tuple[Receiver, int],
    dns: LocalDnsServer,
    landing: str,
) -> None:
    handler, _ = receiver
    token = instance.first_start_token()
    assert token
    verify = ssl.create_default_context(cafile=str(tls_files.ca_pem))
    auth = {"Authorization": f"Bearer {token}"}
    tracking = f"https://127.0.0.1:{instance.tracking_port}"
    with (
        httpx.Client(base_url=instance.url(), headers=auth, verify=verify, timeout=30) as api,
        httpx.Client(verify=verify, timeout=10, headers={"User-Agent": CHROME}) as browser,
    ):
        account = int(api.get("/api/accounts").json()[0]["id"])
        shop_id = _verified_shop(api, account, dns)
        originals = [f"{landing}/offer?id=7&src=mail", f"{landing}/about"]
        html = (
            f'<html><body><p>Hi!</p><a href="{originals[0].replace("&", "&amp;")}">offer</a> '
            f'<a href="{originals[1]}">about</a></body></html>'
        )
        sent = api.post(
            "/api/send",
            json={"from": {"email": f"news@{SHOP}"}, "to": [{"email": "ana@dest.test"}],
                  "subject": "Offer", "html": html, "text": "Hi!"},
        )  # fmt: skip
        assert sent.status_code == 200, sent.text
        [delivery_id] = sent.json()["message_ids"]

        # Links rewritten and signed in what the receiver got; DKIM still verifies.
        [raw] = _received(handler, "ana@dest.test")
        assert dkimpy.DKIM(raw).verify(idx=0, dnsfunc=dns.dkim_dnsfunc())
        body = _html(email.message_from_bytes(raw))
        clicks = re.findall(rf"{re.escape(tracking)}/c/{TOKEN}", body)
        [pixel] = re.findall(rf"{re.escape(tracking)}/o/{TOKEN}", body)
        assert len(clicks) == 2 and landing not in body

        # A person: opens, then follows each link and lands on the original URL.
        time.sleep(0.6)
        assert browser.get(pixel).headers["content-type"] == "image/gif"
        for link, original in zip(clicks, originals, strict=True):
            answer = browser.get(link, follow_redirects=True)
            assert answer.status_code == 200 and str(answer.url) == original
            assert answer.history[0].status_code == 302
            time.sleep(0.3)
        assert Landing.seen == ["/offer?id=7&src=mail", "/about"]

        # A security scanner follows a link too: flagged, not counted as the person.
        browser.get(clicks[0], headers={"User-Agent": "Mimecast URL Protect"})
        time.sleep(0.3)

        # No forged or altered token redirects anywhere.
        _no_forgery_redirects(browser, tracking, clicks[0].rsplit("/", 1)[1])
        assert len(Landing.seen) == 2

        # Stats and logs count the person once (unique) and the scanner apart.
        day = datetime.now(UTC).date().isoformat()
        stats = _eventually(
            lambda: api.get(
                f"/api/accounts/{account}/stats?start_date={day}&end_date={day}"
            ).json(),
            lambda s: s["machine_click_count"] == 1 and s["click_count"] == 1,
        )
        assert (stats["open_count"], stats["click_count"], stats["total_click_count"]) == (1, 1, 2)
        assert stats["machine_click_count"] == 1 and stats["open_rate"] == 1.0
        log = api.get(f"/api/accounts/{account}/email_logs/{delivery_id}").json()
        assert (log["opens_count"], log["clicks_count"]) == (1, 2)
        shown = [(e["event_type"], e["details"]) for e in log["events"]]
        clicked = [d for kind, d in shown if kind == "click"]
        assert [d["click_url"] for d in clicked] == [*originals, originals[0]]
        assert [d["machine"] for d in clicked] == [None, None, "scanner"]
        assert all(d["web_ip_address"] == "127.0.0.1" for d in clicked)
        assert [d["web_ip_address"] for k, d in shown if k == "open"] == ["127.0.0.1"]

        _sdk_sees_it(instance, tls_files, token, account, shop_id, day)

        # One-click unsubscribe of a bulk message, from a real HTTP client.
        bulk = instance.url(bulk=True)
        news = {"from": {"email": f"news@{SHOP}"}, "to": [{"email": "bo@dest.test"}],
                "subject": "News", "text": "Read on."}  # fmt: skip
        assert api.post(f"{bulk}/api/send", json=news).status_code == 200
        [first] = _received(handler, "bo@dest.test")
        headers = email.message_from_bytes(first)
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        [https] = re.findall(
            rf"<({re.escape(tracking)}/u/{TOKEN})>", str(headers["List-Unsubscribe"])
        )
        assert dkimpy.DKIM(first).verify(idx=0, dnsfunc=dns.dkim_dnsfunc())
        one_click = browser.post(
            https,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert one_click.status_code == 200
        suppressed = api.get(f"/api/accounts/{account}/suppressions?email=bo@dest.test").json()
        assert [(s["type"], s["domain_name"]) for s in suppressed] == [("unsubscription", SHOP)]

        later = api.post(f"{bulk}/api/send", json={**news, "subject": "More news"})
        [later_id] = later.json()["message_ids"]
        status = _eventually(
            lambda: api.get(f"/api/accounts/{account}/email_logs/{later_id}").json()["status"],
            lambda s: s != "enqueued",
        )
        assert status == "opted_out"
        time.sleep(1)
        assert len([r for _, rcpts, r in handler.received if "bo@dest.test" in rcpts]) == 1


def _no_forgery_redirects(browser: httpx.Client, tracking: str, valid: str) -> None:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.one_of(
            st.tuples(st.integers(0, len(valid) - 1), st.sampled_from(alphabet)).map(
                lambda change: valid[: change[0]] + change[1] + valid[change[0] + 1 :]
            ),
            st.text(alphabet=alphabet, min_size=56, max_size=56),
            st.text(max_size=80).map(lambda t: quote(t, safe="") or "x"),
        ),
        st.sampled_from(["c", "o", "u", "t"]),
    )
    def check(text: str, path: str) -> None:
        if text == valid and path == "c":
            return
        answer = browser.get(f"{tracking}/{path}/{text}", follow_redirects=False)
        assert answer.status_code in (404, 200) and "location" not in answer.headers
        if path in ("c", "o"):
            assert answer.status_code == 404 or (path == "o" and text == valid)

    check()


def _sdk_sees_it(
    instance: Server, tls_files: TlsFiles, token: str, account: int, shop_id: int, day: str
) -> None:
    """The official SDK reads the stats and manages tracking opt-outs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REQUESTS_CA_BUNDLE", str(tls_files.ca_pem))
        patch.setattr(mailtrap.client, "GENERAL_HOST", f"127.0.0.1:{instance.port}")
        client = mt.MailtrapClient(token=token, account_id=account)
        stats = client.stats_api.get(account, mt.StatsFilterParams(start_date=day, end_date=day))
        assert stats.open_count == 1 and stats.click_count == 1
        opt_outs = client.tracking_opt_outs_api.tracking_opt_outs
        made = opt_outs.create(
            mt.CreateTrackingOptOutParams(email="cy@dest.test", domain_id=shop_id)
        )
        assert made.email == "cy@dest.test" and made.domain_name == SHOP
        listed = opt_outs.get_list()
        assert [o.id for o in listed.data] == [made.id] and listed.last_id is None
        assert opt_outs.delete(made.id).id == made.id
        assert opt_outs.get_list().data == []
