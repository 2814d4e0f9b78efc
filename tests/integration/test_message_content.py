"""What delivery could never send is refused at the door, over real sockets.

SMTP submission and the inbound listener (bounces, reports) each get, over a raw socket
so the bytes arrive exactly as written: a NUL, a bare CR, a bare LF, a line over 998
octets, MIME nested 1,000 levels deep, 200,000 header fields and a header section over
100 KiB. Each is refused for good (5xx naming the problem and, for bytes, the line) and
nothing is stored; before, submission answered 250 and delivery failed later with 554
(NUL, bare CR/LF) or the parser answered 451 (nesting) so clients retried for ever.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from smtp_submission import Ports, Raw, Tls, listeners, make_tls
from sqlalchemy import func, select

from postroom.inbound import listener
from postroom.mta import listen
from postroom.services import Services
from postroom.services.accounts import Bootstrap
from postroom.storage.tables import messages

HEAD = b"From: app@example.com\r\nTo: ann@example.org\r\nSubject: probe\r\n"
DEPTH_LIMIT = 100


def nested(levels: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    for level in range(levels):
        b = f"b{level}".encode()
        body = (
            b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n--'
            + b + b"\r\n" + body + b"--" + b + b"--\r\n"
        )  # fmt: skip
    return HEAD + b"MIME-Version: 1.0\r\n" + body


REFUSED = [
    ("nul", HEAD + b"\r\nline one\r\nline \x00 two\r\n", 554, "NUL character in line 6"),
    ("bare-lf", HEAD + b"\r\nline one\nline two\r\n", 554, "bare LF (not part of CRLF) in line 5"),
    ("bare-cr", HEAD + b"\r\nline one\rline two\r\n", 554, "bare CR (not part of CRLF) in line 5"),
    (
        "deep-mime",
        nested(1000),
        554,
        f"MIME parts nested more than {DEPTH_LIMIT} levels deep",
    ),
    (
        "many-headers",
        HEAD + b"".join(b"X-N: %d\r\n" % i for i in range(200_000)) + b"\r\nbody\r\n",
        552,
        "200003 header fields (at most 1000)",
    ),
    (
        "big-header",
        HEAD
        + b"".join(b"X-Long-%d: " % i + b"v" * 900 + b"\r\n" for i in range(120))
        + b"\r\nbody\r\n",
        552,
        "bytes (at most 102400)",
    ),
]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


def stored(services: Services) -> int:
    return int(
        services.db.read_sync(
            lambda c: c.execute(select(func.count()).select_from(messages)).scalar()
        )
    )


def data(raw: Raw, message: bytes) -> tuple[int, str]:
    stuffed = b"\r\n".join(
        b"." + line if line.startswith(b".") else line for line in message.split(b"\r\n")
    )
    raw.send(stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\n")
    return raw.reply()


def submit(ports: Ports, tls: Tls, token: str, message: bytes) -> tuple[int, str]:
    raw = Raw(ports.implicit, tls, implicit=True)
    assert raw.command("EHLO client.test")[0] == 250
    plain = base64.b64encode(f"\0api\0{token}".encode()).decode()
    assert raw.command(f"AUTH PLAIN {plain}")[0] == 235
    assert raw.command("MAIL FROM:<app@example.com>")[0] == 250
    assert raw.command("RCPT TO:<ann@example.org>")[0] == 250
    assert raw.command("DATA")[0] == 354
    reply = data(raw, message)
    raw.command("QUIT")
    raw.close()
    return reply


@contextmanager
def inbound(services: Services) -> Iterator[int]:
    """The inbound listener on a free loopback port, in its own loop and thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(listener.start(services, sock))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        asyncio.run_coroutine_threadsafe(listen.stop([server]), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        sock.close()


def report(port: int, message: bytes) -> tuple[int, str]:
    raw = Raw(port)
    assert raw.command("EHLO mx.remote.test")[0] == 250
    assert raw.command("MAIL FROM:<>")[0] == 250
    assert raw.command("RCPT TO:<postmaster@pr-bounces.example.com>")[0] == 250
    assert raw.command("DATA")[0] == 354
    reply = data(raw, message)
    raw.command("QUIT")
    raw.close()
    return reply


@pytest.mark.parametrize(("name", "message", "code", "says"), REFUSED, ids=[r[0] for r in REFUSED])
def test_submission_refuses_for_good(
    services: Services, boot: Bootstrap, tls: Tls, name: str, message: bytes, code: int, says: str
) -> None:
    with listeners(services, tls) as ports:
        reply = submit(ports, tls, boot.token, message)
    assert reply[0] == code and says in reply[1], reply
    assert stored(services) == 0


def test_submission_takes_mime_at_the_depth_limit(
    services: Services, boot: Bootstrap, tls: Tls
) -> None:
    with listeners(services, tls) as ports:
        reply = submit(ports, tls, boot.token, nested(DEPTH_LIMIT))
    assert reply[0] == 250, reply
    assert stored(services) == 1


@pytest.mark.parametrize(("name", "message", "code", "says"), REFUSED, ids=[r[0] for r in REFUSED])
def test_inbound_refuses_for_good(
    services: Services, boot: Bootstrap, name: str, message: bytes, code: int, says: str
) -> None:
    with inbound(services) as port:
        reply = report(port, message)
    assert reply[0] == code and says in reply[1], reply


def test_inbound_takes_mime_at_the_depth_limit(services: Services, boot: Bootstrap) -> None:
    with inbound(services) as port:
        assert report(port, nested(DEPTH_LIMIT))[0] == 250


def test_sandbox_readers_of_a_deep_message_stored_before_the_cap(
    services: Services, boot: Bootstrap
) -> None:
    """A message captured before the cap existed is read shallowly, never a 500."""
    from starlette.testclient import TestClient

    from postroom.api.app import create_app
    from postroom.storage.tables import sandbox_messages

    app = create_app(services)
    with TestClient(app, headers={"Authorization": f"Bearer {boot.token}"}) as http:
        sent = http.post(
            f"/api/send/{boot.inbox_id}",
            json={"from": {"email": "a@example.com"}, "to": [{"email": "b@example.org"}],
                  "subject": "deep", "text": "x"},
        )  # fmt: skip
        message_id = int(sent.json()["message_ids"][0])
        services.db.write_sync(
            lambda c: c.execute(
                sandbox_messages.update()
                .where(sandbox_messages.c.id == message_id)
                .values(raw=nested(1000))
            )
        )
        url = f"/api/accounts/{boot.account_id}/inboxes/{boot.inbox_id}/messages/{message_id}"
        for part in ("body.txt", "body.html", "body.htmlsource", "attachments", "mail_headers"):
            response = http.get(f"{url}/{part}")
            assert response.status_code == 200, (part, response.text[:200])
        assert http.get(f"{url}/mail_headers").json()["headers"]["subject"] == "probe"
        assert http.get(f"{url}/attachments").json() == []


def test_the_api_normalises_bare_line_breaks_and_refuses_nul(
    services: Services, boot: Bootstrap
) -> None:
    """The same bytes through the API: line breaks become CRLF, NUL is a 400."""
    from starlette.testclient import TestClient

    from postroom.api.app import create_app
    from postroom.domain.rawmail import unsendable
    from postroom.storage.tables import message_bodies

    mail = {"from": {"email": "a@example.com"}, "to": [{"email": "b@example.org"}],
            "subject": "s"}  # fmt: skip
    with TestClient(create_app(services), headers={"Authorization": f"Bearer {boot.token}"}) as h:
        nul = h.post("/api/send", json={**mail, "text": "line \x00 two"})
        assert nul.status_code == 400
        assert nul.json()["errors"] == ["'text' contains invalid characters"]
        sent = h.post("/api/send", json={**mail, "text": "a\rb\nc", "html": "<p>a\rb\nc</p>"})
        assert sent.status_code == 200
    [message_id] = sent.json()["message_ids"]
    raw = services.db.read_sync(
        lambda c: c.execute(
            select(message_bodies.c.raw).where(message_bodies.c.message_id == message_id)
        ).scalar()
    )
    assert unsendable(bytes(raw)) is None
