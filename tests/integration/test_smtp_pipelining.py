"""PIPELINING (RFC 2920) in outbound sessions, against scripted servers on loopback.

The server here is a plain asyncio server that offers PIPELINING and answers from a
script per command. It records each chunk of bytes it reads, so a test can see that MAIL,
the RCPTs and DATA arrived in one write, and it can split its replies into single bytes
with pauses between them, the way slow links and some MTAs deliver them: the session must
pair every reply with its command whatever the packets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import uvloop

from postroom.mta.classify import Outcome
from postroom.mta.session import SendResult, Session, SessionConfig, SessionError

MESSAGE = b"From: a@sender.test\r\nTo: b@rcpt.test\r\nSubject: hi\r\n\r\n.Hello.\r\n"


@dataclass
class Scripted:
    """What the server answers; ``rcpt`` maps a recipient to its reply."""

    ehlo: bytes = b"250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    mail: bytes = b"250 2.1.0 Ok\r\n"
    rcpt: dict[str, bytes] = field(default_factory=dict)
    data: bytes = b"354 End data with <CR><LF>.<CR><LF>\r\n"
    final: bytes = b"250 2.0.0 Ok: queued\r\n"
    trickle: bool = False  # send replies one byte at a time
    chunks: list[bytes] = field(default_factory=list)  # raw reads, in order
    messages: list[bytes] = field(default_factory=list)

    def answer(self, line: bytes) -> bytes:
        verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
        if verb in (b"EHLO", b"HELO"):
            return self.ehlo
        if verb == b"MAIL":
            return self.mail
        if verb == b"RCPT":
            address = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
            return self.rcpt.get(address, b"250 2.1.5 Ok\r\n")
        if verb == b"DATA":
            return self.data
        if verb == b"RSET":
            return b"250 2.0.0 Ok\r\n"
        if verb == b"QUIT":
            return b"221 2.0.0 Bye\r\n"
        return b"502 5.5.2 Error: command not recognized\r\n"


async def _serve(script: Scripted) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def say(text: bytes) -> None:
            if script.trickle:
                for i in range(len(text)):
                    writer.write(text[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(0.001)
            else:
                writer.write(text)
                await writer.drain()

        await say(b"220 mx ESMTP\r\n")
        pending = b""
        in_data = False
        body = b""
        while chunk := await reader.read(65536):
            script.chunks.append(chunk)
            pending += chunk
            while b"\r\n" in pending:
                line, pending = pending.split(b"\r\n", 1)
                if in_data:
                    if line == b".":
                        in_data = False
                        script.messages.append(body)
                        body = b""
                        await say(script.final)
                    else:
                        body += line + b"\r\n"
                    continue
                reply = script.answer(line)
                await say(reply)
                if line.upper() == b"DATA" and reply.startswith(b"354"):
                    in_data = True
                if line.upper() == b"QUIT":
                    writer.close()
                    return
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _run(
    script: Scripted, go: Callable[[Session], object], run: Callable[..., object] = asyncio.run
) -> object:
    async def main() -> object:
        server = await _serve(script)
        port = server.sockets[0].getsockname()[1]
        config = SessionConfig(ehlo_name="out.postroom.test", port=port, tls="none")
        try:
            async with Session(config, "mx.test", "127.0.0.1") as session:
                result = go(session)
                return await result if asyncio.iscoroutine(result) else result
        finally:
            server.close()
            await server.wait_closed()

    return run(main())


def _send(script: Scripted, rcpts: list[str], times: int = 1) -> list[SendResult]:
    async def go(session: Session) -> list[SendResult]:
        assert session.pipelining
        return [await session.send("b@sender.test", rcpts, MESSAGE) for _ in range(times)]

    result = _run(script, go)
    assert isinstance(result, list)
    return result


def test_mail_rcpts_and_data_go_out_in_one_write() -> None:
    script = Scripted()
    [result] = _send(script, ["a@rcpt.test", "b@rcpt.test", "c@rcpt.test"])
    assert result.accepted == ["a@rcpt.test", "b@rcpt.test", "c@rcpt.test"]
    envelope = [c for c in script.chunks if c.startswith(b"MAIL")]
    assert envelope == [
        b"MAIL FROM:<b@sender.test>\r\nRCPT TO:<a@rcpt.test>\r\nRCPT TO:<b@rcpt.test>\r\n"
        b"RCPT TO:<c@rcpt.test>\r\nDATA\r\n"
    ]
    assert script.messages == [MESSAGE.replace(b"\r\n.Hello", b"\r\n..Hello")]


def test_replies_split_into_single_bytes_are_paired_with_their_commands() -> None:
    script = Scripted(
        trickle=True, rcpt={"b@rcpt.test": b"550-5.1.1 No such\r\n550 5.1.1 user\r\n"}
    )
    [first, second] = _send(script, ["a@rcpt.test", "b@rcpt.test"], times=2)
    for result in (first, second):
        assert result.recipients["a@rcpt.test"].outcome is Outcome.DELIVERED
        rejected = result.recipients["b@rcpt.test"]
        assert rejected.outcome is Outcome.HARD_BOUNCE and rejected.enhanced == "5.1.1"
        assert "No such" in rejected.text and "user" in rejected.text
    assert len(script.messages) == 2


def test_no_accepted_recipient_ends_an_accepted_data_at_once() -> None:
    # A server that answers 354 although it refused every RCPT (RFC 2920 §3.1).
    script = Scripted(rcpt={"a@rcpt.test": b"550 5.1.1 unknown\r\n"})
    [result] = _send(script, ["a@rcpt.test"])
    assert result.recipients["a@rcpt.test"].outcome is Outcome.HARD_BOUNCE
    assert script.messages == [b""]  # the lone dot: nothing of the message was sent
    assert result.response is None


def test_a_refused_mail_from_settles_every_recipient() -> None:
    script = Scripted(
        mail=b"553 5.7.1 sender rejected\r\n",
        rcpt={"a@rcpt.test": b"503 5.5.1 need MAIL\r\n"},
        data=b"503 5.5.1 need RCPT\r\n",
    )
    [result] = _send(script, ["a@rcpt.test"])
    assert result.recipients["a@rcpt.test"].code == 553
    assert script.messages == []


def test_a_temporary_failure_to_data_applies_to_the_accepted() -> None:
    script = Scripted(data=b"451 4.3.0 try later\r\n")
    [result] = _send(script, ["a@rcpt.test", "b@rcpt.test"])
    assert {c.code for c in result.recipients.values()} == {451}
    assert all(c.outcome is Outcome.SOFT_BOUNCE for c in result.recipients.values())


def test_a_reply_that_is_not_smtp_drops_the_connection() -> None:
    script = Scripted(mail=b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(SessionError) as caught:
        _send(script, ["a@rcpt.test"])
    assert caught.value.classification.outcome is Outcome.SOFT_BOUNCE


def test_without_pipelining_each_command_waits_for_its_reply() -> None:
    script = Scripted(ehlo=b"250-mx\r\n250 8BITMIME\r\n")

    async def go(session: Session) -> SendResult:
        assert not session.pipelining
        return await session.send("b@sender.test", ["a@rcpt.test", "b@rcpt.test"], MESSAGE)

    result = _run(script, go)
    assert isinstance(result, SendResult)
    assert result.accepted == ["a@rcpt.test", "b@rcpt.test"]
    commands = [c for c in script.chunks if c[:4] in (b"MAIL", b"RCPT", b"DATA")]
    assert commands == [
        b"MAIL FROM:<b@sender.test>\r\n",
        b"RCPT TO:<a@rcpt.test>\r\n",
        b"RCPT TO:<b@rcpt.test>\r\n",
        b"DATA\r\n",
    ]


def test_a_421_in_the_pipeline_settles_the_rest_and_closes() -> None:
    script = Scripted(rcpt={"a@rcpt.test": b"421 4.7.0 too many connections, slow down\r\n"})
    [result] = _send(script, ["a@rcpt.test", "b@rcpt.test"])
    assert {c.code for c in result.recipients.values()} == {421}
    assert script.messages == []


def test_the_session_runs_on_uvloop_as_serve_does() -> None:
    # uvloop's transports are not instances of asyncio.Transport; the take-over from
    # aiosmtplib must not depend on it (postroom serve runs on uvloop).
    script = Scripted()

    async def go(session: Session) -> SendResult:
        assert session.pipelining
        return await session.send("b@sender.test", ["a@rcpt.test"], MESSAGE)

    result = _run(script, go, run=uvloop.run)
    assert isinstance(result, SendResult)
    assert result.accepted == ["a@rcpt.test"]


def test_a_server_that_stalls_after_the_message_times_out_as_a_soft_bounce() -> None:
    script = Scripted(final=b"")  # takes the message, never answers the final dot

    async def go(session: Session) -> SendResult:
        return await session.send("b@sender.test", ["a@rcpt.test"], MESSAGE)

    async def main() -> SessionError:
        server = await _serve(script)
        port = server.sockets[0].getsockname()[1]
        config = SessionConfig(
            ehlo_name="out.postroom.test", port=port, tls="none", data_timeout=0.3
        )
        try:
            async with Session(config, "mx.test", "127.0.0.1") as session:
                await go(session)
        except SessionError as exc:
            return exc
        finally:
            server.close()
        raise AssertionError("no SessionError")

    error = asyncio.run(main())
    assert error.classification.outcome is Outcome.SOFT_BOUNCE
    assert "timed out" in error.classification.text
