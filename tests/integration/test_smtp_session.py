"""The outbound SMTP session against real aiosmtpd servers on loopback.

Each server runs in its own thread (aiosmtpd's Controller) with a scripted handler that
records what arrived: envelopes, message content and, for the smuggling checks, the raw
bytes off the socket. Silent servers (a banner that never comes) are plain asyncio servers.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope
from aiosmtpd.smtp import Session as ServerSession

from postroom.mta.classify import BounceCategory, Outcome
from postroom.mta.session import (
    SendResult,
    Session,
    SessionConfig,
    SessionError,
    prepare_message,
)

MX_NAME = "mx.postroom.test"
MESSAGE = b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: hi\r\n\r\nHello.\r\n"


@dataclass
class Received:
    peer: Any
    mail_from: str
    mail_options: list[str]
    rcpt_tos: list[str]
    content: bytes


@dataclass
class Script:
    """What the server answers; everything it received."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    drop_after_data: bool = False
    received: list[Received] = field(default_factory=list)
    peers: set[Any] = field(default_factory=set)
    raw: bytearray = field(default_factory=bytearray)
    open_connections: set[int] = field(default_factory=set)

    async def handle_MAIL(
        self,
        server: SMTPServer,
        session: ServerSession,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        self.peers.add(session.peer)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: ServerSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(
        self, server: SMTPServer, session: ServerSession, envelope: Envelope
    ) -> str:
        assert isinstance(envelope.content, bytes)
        self.received.append(
            Received(
                session.peer,
                str(envelope.mail_from),
                list(envelope.mail_options),
                list(envelope.rcpt_tos),
                envelope.content,
            )
        )
        if self.drop_after_data:
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
        return self.data_reply or "250 2.0.0 OK queued as ABC123"


class RecordingController(Controller):
    """A Controller whose server also keeps the raw bytes it read (plaintext sessions)."""

    def __init__(self, script: Script, **kwargs: Any) -> None:
        super().__init__(script, **kwargs)
        self.script = script

    def factory(self) -> SMTPServer:
        script = self.script

        class Recording(SMTPServer):
            # STARTTLS calls connection_made a second time (TLS transport): count servers.
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                script.open_connections.add(id(self))
                super().connection_made(transport)

            def connection_lost(self, exc: Exception | None) -> None:
                script.open_connections.discard(id(self))
                super().connection_lost(exc)

            def data_received(self, data: bytes) -> None:
                script.raw.extend(data)
                super().data_received(data)

        return Recording(self.handler, **self.SMTP_kwargs)

    def stop(self, no_assert: bool = False) -> None:
        # A client that hung up without QUIT leaves a server-side connection that only
        # closes once the server thread reads the EOF; stopping before that leaks it.
        deadline = time.monotonic() + 2
        while self.script.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        super().stop(no_assert)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _start(script: Script, **kwargs: Any) -> RecordingController:
    controller = RecordingController(
        script, hostname="127.0.0.1", port=_free_port(), server_hostname=MX_NAME, **kwargs
    )
    controller.start()
    return controller


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def server(script: Script) -> Iterator[RecordingController]:
    controller = _start(script)
    yield controller
    controller.stop()


@pytest.fixture
def tls_server(script: Script, ca: trustme.CA) -> Iterator[RecordingController]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(MX_NAME).configure_cert(context)
    controller = _start(script, tls_context=context, require_starttls=False)
    yield controller
    controller.stop()


def _config(port: int, **kwargs: Any) -> SessionConfig:
    return SessionConfig(ehlo_name="out.postroom.test", port=port, **kwargs)


def _send(
    port: int, mail_from: str, rcpts: list[str], message: bytes = MESSAGE, **kwargs: Any
) -> SendResult:
    async def go() -> SendResult:
        async with Session(_config(port, **kwargs), MX_NAME, "127.0.0.1") as session:
            return await session.send(mail_from, rcpts, message)

    return asyncio.run(go())


# --- per-recipient results


def test_delivers_to_accepted_recipients_and_classifies_the_rejected(
    server: RecordingController, script: Script
) -> None:
    script.rcpt_replies = {
        "gone@rcpt.test": "550 5.1.1 <gone@rcpt.test>: Recipient address rejected: "
        "User unknown in virtual mailbox table",
        "full@rcpt.test": "452 4.2.2 Mailbox full",
    }
    rcpts = ["a@rcpt.test", "gone@rcpt.test", "b@rcpt.test", "full@rcpt.test"]
    result = _send(server.port, "bounce@sender.test", rcpts, tls="none")

    assert result.recipients["a@rcpt.test"].outcome is Outcome.DELIVERED
    assert result.recipients["b@rcpt.test"].outcome is Outcome.DELIVERED
    gone = result.recipients["gone@rcpt.test"]
    assert (gone.outcome, gone.category, gone.enhanced) == (
        Outcome.HARD_BOUNCE,
        BounceCategory.BAD_MAILBOX,
        "5.1.1",
    )
    full = result.recipients["full@rcpt.test"]
    assert (full.outcome, full.category) == (Outcome.SOFT_BOUNCE, BounceCategory.MAILBOX_FULL)
    assert result.accepted == ["a@rcpt.test", "b@rcpt.test"]
    assert result.response == "250 2.0.0 OK queued as ABC123"
    assert (result.remote_host, result.remote_address) == (MX_NAME, "127.0.0.1")
    [received] = script.received
    assert received.rcpt_tos == ["a@rcpt.test", "b@rcpt.test"]
    assert received.content == MESSAGE
    assert f"SIZE={len(MESSAGE)}" in received.mail_options


def test_all_recipients_rejected_skips_data(server: RecordingController, script: Script) -> None:
    script.rcpt_replies = {"x@rcpt.test": "550 5.1.1 User unknown"}
    result = _send(server.port, "bounce@sender.test", ["x@rcpt.test"], tls="none")
    assert result.recipients["x@rcpt.test"].category is BounceCategory.BAD_MAILBOX
    assert result.response is None
    assert script.received == []


def test_data_temporary_failure_applies_to_all_accepted(
    server: RecordingController, script: Script
) -> None:
    script.data_reply = "451 4.3.0 Temporary lookup failure"
    result = _send(server.port, "bounce@sender.test", ["a@rcpt.test", "b@rcpt.test"], tls="none")
    for classification in result.recipients.values():
        assert classification.outcome is Outcome.SOFT_BOUNCE
        assert classification.code == 451
    assert result.response == "451 4.3.0 Temporary lookup failure"


def test_disconnect_after_data_is_a_network_soft_bounce(
    server: RecordingController, script: Script
) -> None:
    script.drop_after_data = True
    with pytest.raises(SessionError) as caught:
        _send(server.port, "bounce@sender.test", ["a@rcpt.test"], tls="none")
    assert caught.value.classification.outcome is Outcome.SOFT_BOUNCE
    assert caught.value.classification.category is BounceCategory.NETWORK


def test_eight_bit_body_declares_8bitmime(server: RecordingController, script: Script) -> None:
    body = "From: a@sender.test\r\n\r\nGrüße\r\n".encode()
    _send(server.port, "bounce@sender.test", ["a@rcpt.test"], body, tls="none")
    assert "BODY=8BITMIME" in script.received[0].mail_options


def test_non_ascii_address_uses_smtputf8_when_offered(
    server: RecordingController, script: Script
) -> None:
    result = _send(server.port, "bounce@sender.test", ["jörg@rcpt.test"], tls="none")
    assert result.recipients["jörg@rcpt.test"].outcome is Outcome.DELIVERED
    assert "SMTPUTF8" in script.received[0].mail_options


def test_non_ascii_address_fails_permanently_without_smtputf8(script: Script) -> None:
    controller = _start(script, enable_SMTPUTF8=False)
    try:
        result = _send(
            controller.port, "bounce@sender.test", ["jörg@rcpt.test", "a@rcpt.test"], tls="none"
        )
    finally:
        controller.stop()
    refused = result.recipients["jörg@rcpt.test"]
    assert (refused.outcome, refused.enhanced) == (Outcome.HARD_BOUNCE, "5.6.7")
    assert result.recipients["a@rcpt.test"].outcome is Outcome.DELIVERED
    assert script.received[0].rcpt_tos == ["a@rcpt.test"]


# --- connection reuse


def test_three_messages_over_one_connection_with_rset_after_failure(
    server: RecordingController, script: Script
) -> None:
    script.rcpt_replies = {"gone@rcpt.test": "550 5.1.1 User unknown"}

    async def go() -> list[SendResult]:
        async with Session(_config(server.port, tls="none"), MX_NAME, "127.0.0.1") as session:
            return [
                await session.send("bounce@sender.test", ["a@rcpt.test"], MESSAGE),
                await session.send("bounce@sender.test", ["gone@rcpt.test"], MESSAGE),
                await session.send("bounce@sender.test", ["b@rcpt.test"], MESSAGE),
            ]

    first, second, third = asyncio.run(go())
    assert first.recipients["a@rcpt.test"].outcome is Outcome.DELIVERED
    assert second.recipients["gone@rcpt.test"].outcome is Outcome.HARD_BOUNCE
    assert third.recipients["b@rcpt.test"].outcome is Outcome.DELIVERED
    assert len(script.peers) == 1  # one TCP connection carried all three
    assert [r.rcpt_tos for r in script.received] == [["a@rcpt.test"], ["b@rcpt.test"]]
    assert bytes(script.raw).count(b"RSET\r\n") == 1  # only after the failed one
    assert bytes(script.raw).count(b"EHLO out.postroom.test\r\n") == 1


# --- TLS


def test_opportunistic_starttls_with_an_untrusted_certificate(
    tls_server: RecordingController, script: Script
) -> None:
    async def go() -> tuple[SendResult, dict[str, str]]:
        async with Session(_config(tls_server.port), MX_NAME, "127.0.0.1") as session:
            result = await session.send("bounce@sender.test", ["a@rcpt.test"], MESSAGE)
            return result, session.extensions

    result, extensions = asyncio.run(go())
    assert result.tls_version in ("TLSv1.2", "TLSv1.3")
    assert result.tls_cipher
    assert "starttls" not in extensions  # learned again after the handshake
    assert result.recipients["a@rcpt.test"].outcome is Outcome.DELIVERED


def test_required_tls_verifies_against_a_trusted_ca(
    tls_server: RecordingController, ca: trustme.CA
) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    result = _send(
        tls_server.port, "bounce@sender.test", ["a@rcpt.test"], tls="required", tls_context=context
    )
    assert result.tls_version is not None


def test_required_tls_with_an_untrusted_certificate_is_a_temporary_failure(
    tls_server: RecordingController, script: Script
) -> None:
    with pytest.raises(SessionError) as caught:
        _send(tls_server.port, "bounce@sender.test", ["a@rcpt.test"], tls="required")
    assert caught.value.classification.outcome is Outcome.SOFT_BOUNCE
    assert script.received == []


def test_required_tls_without_starttls_is_a_temporary_failure(
    server: RecordingController, script: Script
) -> None:
    with pytest.raises(SessionError) as caught:
        _send(server.port, "bounce@sender.test", ["a@rcpt.test"], tls="required")
    classification = caught.value.classification
    assert classification.outcome is Outcome.SOFT_BOUNCE
    assert classification.enhanced == "4.7.10"
    assert b"MAIL" not in bytes(script.raw)


def test_opportunistic_without_starttls_sends_in_cleartext(
    server: RecordingController,
) -> None:
    result = _send(server.port, "bounce@sender.test", ["a@rcpt.test"])
    assert result.tls_version is None
    assert result.recipients["a@rcpt.test"].outcome is Outcome.DELIVERED


# --- smuggling and injection guards


def test_dot_stuffing_on_the_wire_and_restored_by_the_server(
    server: RecordingController, script: Script
) -> None:
    message = (
        b"From: a@sender.test\r\nSubject: dots\r\n\r\nfirst\r\n.\r\n.hidden\r\n..two\r\nlast\r\n"
    )
    _send(server.port, "bounce@sender.test", ["a@rcpt.test"], message, tls="none")
    wire = bytes(script.raw)
    data = wire[wire.index(b"DATA\r\n") + len(b"DATA\r\n") :]
    expected = (
        b"From: a@sender.test\r\nSubject: dots\r\n\r\n"
        b"first\r\n..\r\n..hidden\r\n...two\r\nlast\r\n.\r\n"
    )
    assert data[: len(expected)] == expected
    assert script.received[0].content == message


def test_bare_lf_is_refused_before_anything_is_written(
    server: RecordingController, script: Script
) -> None:
    async def go() -> SendResult:
        async with Session(_config(server.port, tls="none"), MX_NAME, "127.0.0.1") as session:
            for bad in (b"Subject: x\r\n\r\nsmuggled\n.\nMAIL FROM:<x>\r\n", b"a\rb\r\n"):
                with pytest.raises(ValueError, match="bare CR or LF"):
                    await session.send("bounce@sender.test", ["a@rcpt.test"], bad)
            # The session is still fine afterwards.
            return await session.send("bounce@sender.test", ["a@rcpt.test"], MESSAGE)

    assert asyncio.run(go()).recipients["a@rcpt.test"].outcome is Outcome.DELIVERED
    assert bytes(script.raw).count(b"MAIL FROM") == 1


@pytest.mark.parametrize(
    ("mail_from", "rcpt"),
    [
        ("bounce@sender.test", "a@rcpt.test>\r\nRCPT TO:<evil@rcpt.test"),
        ("bounce@sender.test\r\nRCPT TO:<evil@rcpt.test>", "a@rcpt.test"),
        ("bounce@sender.test", "a@rcpt.test\x00"),
        ("bounce@sender.test", "<a@rcpt.test>"),
    ],
)
def test_address_injection_is_refused_and_nothing_written(
    server: RecordingController, script: Script, mail_from: str, rcpt: str
) -> None:
    with pytest.raises(ValueError, match="invalid envelope address"):
        _send(server.port, mail_from, [rcpt], tls="none")
    assert b"MAIL" not in bytes(script.raw)
    assert b"evil" not in bytes(script.raw)


def test_prepare_message_limits() -> None:
    assert prepare_message(b"a\r\nb") == b"a\r\nb\r\n"
    assert prepare_message(b"x" * 998 + b"\r\n") == b"x" * 998 + b"\r\n"
    with pytest.raises(ValueError, match="999 octets"):
        prepare_message(b"x" * 999 + b"\r\n")
    with pytest.raises(ValueError, match="NUL"):
        prepare_message(b"a\x00b\r\n")
    with pytest.raises(ValueError, match="bare CR or LF"):
        prepare_message(b"a\r\r\n.\r\r\n")


# --- network failures


def test_silent_server_times_out_as_a_network_soft_bounce() -> None:
    async def go() -> tuple[SessionError, float]:
        handlers: list[asyncio.Task[None]] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.append(task)
            await reader.read()  # never says 220; waits for the client to give up
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        started = time.monotonic()
        try:
            async with Session(_config(port, connect_timeout=0.5), MX_NAME, "127.0.0.1"):
                pass
        except SessionError as exc:
            return exc, time.monotonic() - started
        finally:
            server.close()
            await asyncio.gather(*handlers)  # the client hung up: each handler finishes
            await server.wait_closed()
        raise AssertionError("no SessionError")

    error, elapsed = asyncio.run(go())
    assert error.classification.outcome is Outcome.SOFT_BOUNCE
    assert error.classification.category is BounceCategory.NETWORK
    assert elapsed < 2.0


def test_connection_refused_is_a_network_soft_bounce() -> None:
    with pytest.raises(SessionError) as caught:
        _send(_free_port(), "bounce@sender.test", ["a@rcpt.test"], connect_timeout=2)
    assert caught.value.classification.category is BounceCategory.NETWORK
    assert caught.value.classification.enhanced == "4.4.1"


def test_send_on_a_closed_session_raises_session_error(server: RecordingController) -> None:
    async def go() -> None:
        session = Session(_config(server.port, tls="none"), MX_NAME, "127.0.0.1")
        await session.open()
        await session.close()
        await session.send("bounce@sender.test", ["a@rcpt.test"], MESSAGE)

    with pytest.raises(SessionError):
        asyncio.run(go())


def test_plaintext_injected_after_the_starttls_reply_is_not_taken_as_a_reply(
    ca: trustme.CA,
) -> None:
    """STARTTLS response injection (CVE-2011-0411 family, reliability.md §3.2).

    A hostile or tampered peer sends, in the same packet as ``220`` to STARTTLS,
    plaintext replies meant to be read as answers to the client's first commands over
    TLS (here a ``554`` that would fail the message). The client must discard them: the
    real replies come over TLS, and the message is delivered.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(MX_NAME).configure_cert(context)
    seen: list[bytes] = []

    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(text: bytes) -> None:
            writer.write(text)
            await writer.drain()

        await reply(b"220 mx ESMTP\r\n")
        tls = False
        while line := await reader.readline():
            seen.append(line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                await reply(b"250-mx\r\n250 STARTTLS\r\n" if not tls else b"250 mx\r\n")
            elif verb == b"STAR":
                await reply(b"220 2.0.0 Ready\r\n554 5.7.1 injected\r\n554 5.7.1 injected\r\n")
                await writer.start_tls(context)
                tls = True
            elif verb == b"DATA":
                await reply(b"354 go\r\n")
                while (body := await reader.readline()) != b".\r\n":
                    seen.append(body)
                await reply(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                await reply(b"221 bye\r\n")
                break
            else:
                await reply(b"250 ok\r\n")
        writer.close()

    async def go() -> SendResult:
        server = await asyncio.start_server(hostile, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with Session(_config(port), MX_NAME, "127.0.0.1") as session:
                return await session.send("bounce@sender.test", ["a@rcpt.test"], MESSAGE)
        finally:
            server.close()
            await server.wait_closed()

    result = asyncio.run(go())
    assert result.tls_version is not None
    assert result.recipients["a@rcpt.test"].outcome is Outcome.DELIVERED
    assert result.response == "250 2.0.0 queued"
    commands = [line.split(b" ")[0].split(b":")[0].strip().upper() for line in seen[:6]]
    assert commands[:4] == [b"EHLO", b"STARTTLS", b"EHLO", b"MAIL"]
