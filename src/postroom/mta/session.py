"""One outbound SMTP session to one MX address, reusable for several messages.

The protocol is aiosmtplib's; the policy is ours. A :class:`Session` connects to one
address of one MX host, says EHLO (RFC 5321 §4.1.1.1; HELO when EHLO is refused),
upgrades with STARTTLS (RFC 3207) according to the TLS policy, says EHLO again (RFC 3207
§4.2: everything learned before TLS is discarded) and then carries any number of
transactions (MAIL, RCPT..., DATA) with per-recipient results, RSET between them after a
failure (RFC 5321 §4.1.1.5). Reusing a session matters: on this stack it is 1.6-2x the
throughput at half the CPU per message (perf-baselines.md §2).

TLS policy:

- ``"opportunistic"`` (RFC 7435): STARTTLS when offered, certificates not verified (an
  unauthenticated encrypted channel beats cleartext; MX certificates are routinely
  self-signed or mismatched). A failed handshake falls back to cleartext on a *new*
  connection, the way Postfix does, because a host with broken TLS must stay reachable.
  A ``454`` answer to STARTTLS continues in cleartext on the same connection.
- ``"required"``: a verifying context by default (hostname checked against the MX name);
  no STARTTLS, a refused STARTTLS or a failed handshake is a temporary failure
  (``4.7.10`` "encryption needed"), never a silent downgrade.
- ``"none"``: cleartext.
- ``implicit_tls`` (relay to port 465, RFC 8314 §3.3): TLS from the first byte, with the
  policy's context; no STARTTLS afterwards.

AUTH (RFC 4954, relay mode): after TLS, with the configured credentials; refused
credentials are a temporary ``4.7.8`` failure (our configuration, not the recipients').

Security guards, all before a single byte of the command or message is written:

- The message must already have strict CRLF line endings, no NUL, lines ≤ 998 octets
  (RFC 5321 §4.5.3.1.6). A bare CR or LF raises :class:`ValueError` instead of being
  "fixed": we must never be "server A" of SMTP smuggling (CVE-2023-51764 family), and our
  serializer guarantees CRLF, so a violation is a bug upstream. :func:`dot_stuff` does
  the transparency (RFC 5321 §4.5.2) and ``.CRLF`` ends the data.
- Envelope addresses with CR, LF, NUL, other controls, ``<``, ``>`` or spaces raise
  :class:`ValueError` (command injection; aiosmtplib advisory GHSA-v3q9-hj7j-63hq).
- STARTTLS response injection (reliability.md §3.2): aiosmtplib ≥ 5 discards plaintext
  buffered after the ``220`` to STARTTLS and ignores unsolicited data between commands.

Failures without a reply (refused, timeouts, dropped connections, failed handshakes) raise
:class:`SessionError` with a ``451``-equivalent network soft bounce (RFC 5321 §3.8); the
session is closed afterwards. Replies, even ``421``, are returned as per-recipient
:class:`~postroom.mta.classify.Classification` values in a :class:`SendResult`.

Who speaks: aiosmtplib opens the session (connect, EHLO/HELO, STARTTLS, AUTH); then a
:class:`~postroom.mta.wire.Wire` takes the connection over for the transactions, which
it pipelines (RFC 2920) when the server offers PIPELINING: MAIL, the RCPTs and DATA in
one write, one round trip instead of two plus one per recipient. MTA-STS decides the TLS
policy of a session from outside (postroom.mta.deliver).

Limitations: 8-bit bodies are sent as-is to servers without 8BITMIME (Postfix's default
too); addresses with a quoted local part containing spaces are refused; DSN parameters
(RFC 3461 NOTIFY/RET/ENVID) are not sent; no REQUIRETLS or DANE.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, cast

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPException,
    SMTPHeloError,
    SMTPResponse,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from postroom.errors import PostroomError
from postroom.mta.classify import (
    BounceCategory,
    Classification,
    Outcome,
    classify_failure,
    classify_reply,
)
from postroom.mta.wire import Wire

TlsPolicy = Literal["opportunistic", "required", "none"]

MAX_LINE_OCTETS = 998  # RFC 5321 §4.5.3.1.6, excluding CRLF
_QUIT_TIMEOUT = 10.0  # a polite goodbye must not hold a worker for a full command timeout
_CLOSE_WAIT = 1.0

_BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_BAD_ADDRESS_CHARS = re.compile(r"[\x00-\x20\x7f<>]")


class SessionError(PostroomError):
    """The session failed without a usable reply; ``classification`` says how to retry."""

    def __init__(self, classification: Classification) -> None:
        super().__init__(str(classification))
        self.classification = classification


def _opportunistic_context() -> ssl.SSLContext:
    # RFC 7435: encrypt without authenticating rather than fall back to cleartext.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class SessionConfig:
    ehlo_name: str
    port: int = 25
    connect_timeout: float = 30
    command_timeout: float = 60
    data_timeout: float = 600
    tls: TlsPolicy = "opportunistic"
    # None: chosen from the policy in __post_init__, once per config, because building a
    # verifying context loads the CA store (milliseconds) and sessions are many.
    tls_context: ssl.SSLContext | None = None
    implicit_tls: bool = False
    credentials: tuple[str, str] | None = None  # AUTH user name and password (relay)

    def __post_init__(self) -> None:
        if self.tls_context is None and self.tls == "opportunistic":
            self.tls_context = _opportunistic_context()
        elif self.tls_context is None and self.tls == "required":
            self.tls_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.implicit_tls and self.tls == "none":
            raise ValueError("implicit TLS needs a TLS policy other than 'none'")


@dataclass(frozen=True)
class SendResult:
    recipients: dict[str, Classification]
    remote_host: str
    remote_address: str
    tls_version: str | None
    tls_cipher: str | None
    response: str | None  # the final reply to DATA ("250 2.0.0 Ok: queued"), if reached

    @property
    def accepted(self) -> list[str]:
        return [rcpt for rcpt, c in self.recipients.items() if c.code // 100 == 2]


def check_address(address: str, *, allow_empty: bool = False) -> None:
    """Refuse envelope addresses that could inject SMTP commands or break the syntax."""
    if not address and allow_empty:
        return  # the null reverse-path "<>" (RFC 5321 §4.5.5), used for bounces
    if not address or _BAD_ADDRESS_CHARS.search(address):
        raise ValueError(f"invalid envelope address: {address!r}")


def prepare_message(message: bytes) -> bytes:
    """Validate the wire form: strict CRLF, no NUL, lines ≤ 998 octets, CRLF at the end."""
    if b"\0" in message:
        raise ValueError("message contains a NUL byte")
    # Counting in C is ~15x faster than a lookaround regex on a 7 KB message; the regex
    # then runs only to say where the offending byte is.
    pairs = message.count(b"\r\n")
    if message.count(b"\r") != pairs or message.count(b"\n") != pairs:
        bare = _BARE_CR_OR_LF.search(message)
        offset = bare.start() if bare is not None else -1
        raise ValueError(f"message has a bare CR or LF at offset {offset}")
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    longest = max(len(line) for line in message.split(b"\r\n"))
    if longest > MAX_LINE_OCTETS:
        raise ValueError(f"message has a line of {longest} octets (limit {MAX_LINE_OCTETS})")
    return message


class _TlsFailed(Exception):
    """The STARTTLS handshake itself failed (not a refusal by reply)."""


@dataclass
class _Transaction:
    """One message's recipients and their results, filled in as replies arrive."""

    pending: list[str]
    results: dict[str, Classification] = field(default_factory=dict)
    response: str | None = None

    def settle_all(self, classification: Classification) -> None:
        for rcpt in self.pending:
            self.results[rcpt] = classification
        self.pending = []


class Session:
    """An SMTP session to one address of one MX host (async context manager).

    ``source_address`` binds the local end (a pool's sending IP); ``local_address`` is
    the address the connection really left from (the event's ``sending_ip``), and
    ``sent`` counts the messages given to it (for messages-per-connection limits).
    """

    def __init__(
        self,
        config: SessionConfig,
        host_name: str,
        address: str,
        *,
        source_address: str | None = None,
    ) -> None:
        self.config = config
        self.host_name = host_name
        self.address = address
        self.source_address = source_address
        self.local_address: str | None = None
        self.sent = 0
        self.tls_version: str | None = None
        self.tls_cipher: str | None = None
        self.tls_fallback = False  # opportunistic handshake failed; cleartext reconnect
        self._smtp: aiosmtplib.SMTP | None = None  # opening: connect, EHLO, TLS, AUTH
        self._wire: Wire | None = None  # then the transactions (see postroom.mta.wire)
        self._extensions: dict[str, str] = {}
        # While closing: tells whether the connection is gone (see _wait_closed).
        self._closing: Callable[[], bool] | None = None
        self._needs_rset = False

    async def __aenter__(self) -> Session:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- state

    @property
    def is_open(self) -> bool:
        return self._wire is not None and self._wire.is_open

    @property
    def extensions(self) -> dict[str, str]:
        """EHLO keywords (lower case) → parameters, as learned after STARTTLS."""
        return dict(self._extensions)

    @property
    def pipelining(self) -> bool:
        """Whether transactions are pipelined (the server offered PIPELINING, RFC 2920)."""
        return "pipelining" in self._extensions

    # --- opening

    async def open(self) -> None:
        """Connect, greet, negotiate TLS; :class:`SessionError` when that fails."""
        try:
            try:
                await self._open(use_tls=self.config.tls != "none")
            except _TlsFailed as exc:
                await self._wait_closed()
                if self.config.tls == "required":
                    raise SessionError(classify_failure("tls", str(exc))) from exc
                self.tls_fallback = True
                await self._open(use_tls=False)
        except BaseException:
            await self._wait_closed()
            raise

    async def _open(self, use_tls: bool) -> None:
        self._smtp = await self._connect(implicit_tls=use_tls and self.config.implicit_tls)
        try:
            await self._greet(self._smtp)
            if self.config.implicit_tls and use_tls:
                self._record_tls(self._smtp)
            elif use_tls:
                await self._starttls(self._smtp)
            sockname = self._smtp.get_transport_info("sockname")
            if isinstance(sockname, tuple) and sockname:
                self.local_address = str(sockname[0])
            if self.config.credentials is not None:
                await self._login(self._smtp, *self.config.credentials)
            self._take_over(self._smtp)
        except BaseException:
            self._abort()
            raise

    def _take_over(self, smtp: aiosmtplib.SMTP) -> None:
        """Hand the open connection from aiosmtplib to a :class:`Wire` for transactions."""
        protocol = smtp.protocol
        transport = protocol.transport if protocol is not None else None
        # No isinstance(asyncio.Transport) check: uvloop's transports are not registered
        # as asyncio's classes, though they implement set_protocol() and write().
        if transport is None or transport.is_closing():
            raise SessionError(classify_failure("disconnect", "connection lost while opening"))
        self._extensions = dict(smtp.esmtp_extensions)
        self._wire = Wire.take_over(cast(asyncio.Transport, transport))
        self._smtp = None  # aiosmtplib no longer reads this connection

    async def _connect(self, *, implicit_tls: bool) -> aiosmtplib.SMTP:
        cfg = self.config
        smtp = aiosmtplib.SMTP(
            hostname=self.address,
            port=cfg.port,
            # Always set: unset, aiosmtplib 5 runs socket.getfqdn() in a thread on every
            # connect, which costs 38% of throughput (perf-baselines.md §2).
            local_hostname=cfg.ehlo_name,
            source_address=(self.source_address, 0) if self.source_address else None,
            timeout=cfg.command_timeout,
            # Implicit TLS checks the certificate against the address we connect to, which
            # is the smarthost's name in relay mode (the only user of implicit TLS).
            use_tls=implicit_tls,
            tls_context=cfg.tls_context if implicit_tls else None,
            start_tls=False,  # we decide, after EHLO, per policy
        )
        try:
            await smtp.connect(timeout=cfg.connect_timeout)
        except SMTPConnectResponseError as exc:  # banner other than 220 ("554 no service")
            raise SessionError(classify_reply(exc.code, exc.message)) from exc
        except SMTPConnectTimeoutError as exc:
            raise SessionError(classify_failure("connect_timeout", str(exc))) from exc
        except ssl.SSLError as exc:
            raise SessionError(
                classify_failure("tls", f"TLS with {self.host_name}: {exc}")
            ) from exc
        except (SMTPException, OSError) as exc:
            raise SessionError(classify_failure("connect", str(exc))) from exc
        return smtp

    async def _login(self, smtp: aiosmtplib.SMTP, username: str, password: str) -> None:
        if not smtp.supports_extension("auth"):
            raise SessionError(_auth_failure(f"{self.host_name} does not offer AUTH (is TLS on?)"))
        try:
            await smtp.login(username, password, timeout=self.config.command_timeout)
        except SMTPAuthenticationError as exc:
            raise SessionError(
                _auth_failure(f"smarthost AUTH failed: {exc.code} {exc.message}")
            ) from exc
        except (SMTPException, OSError) as exc:
            raise SessionError(classify_failure("disconnect", f"AUTH failed: {exc}")) from exc

    async def _greet(self, smtp: aiosmtplib.SMTP) -> None:
        """EHLO, or HELO when EHLO is refused with a 5yz (RFC 5321 §4.1.4)."""
        try:
            try:
                await smtp.ehlo()
            except SMTPHeloError as exc:
                if exc.code // 100 != 5 or not smtp.is_connected:
                    raise
                await smtp.helo()
        except SMTPResponseException as exc:
            raise SessionError(classify_reply(exc.code, exc.message)) from exc
        except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as exc:
            raise SessionError(_failure(exc)) from exc

    async def _starttls(self, smtp: aiosmtplib.SMTP) -> None:
        if not smtp.supports_extension("starttls"):
            self._tls_unavailable(f"STARTTLS not offered by {self.host_name}")
            return
        try:
            await smtp.starttls(
                server_hostname=self.host_name,  # SNI and, when verifying, the name checked
                tls_context=self.config.tls_context,
                timeout=self.config.command_timeout,
            )
        except SMTPResponseException as exc:  # "454 TLS not available due to ..."
            self._tls_unavailable(f"STARTTLS refused: {exc.code} {exc.message}")
            return
        except (SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
            raise _TlsFailed(f"TLS handshake with {self.host_name} failed: {exc}") from exc
        self._record_tls(smtp)
        await self._greet(smtp)  # RFC 3207 §4.2: forget the cleartext EHLO

    def _record_tls(self, smtp: aiosmtplib.SMTP) -> None:
        ssl_object = smtp.get_transport_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject):
            self.tls_version = ssl_object.version()
            cipher = ssl_object.cipher()
            self.tls_cipher = cipher[0] if cipher else None

    def _tls_unavailable(self, reason: str) -> None:
        """Opportunistic: carry on in cleartext. Required: a temporary failure."""
        if self.config.tls == "required":
            # X.7.10 "Encryption needed" (RFC 5248); 4yz: the host may fix it, retry.
            raise SessionError(classify_reply(451, f"4.7.10 TLS required by policy; {reason}"))

    # --- closing

    async def close(self) -> None:
        """QUIT politely (bounded), then drop the connection whatever happened."""
        wire, self._wire = self._wire, None
        if wire is not None:
            self._closing = wire.gone
            try:
                if wire.is_open:
                    await wire.command(b"QUIT", min(self.config.command_timeout, _QUIT_TIMEOUT))
            except (SMTPException, OSError):
                pass  # the message outcomes are already decided; QUIT is a courtesy
            finally:
                wire.close()
        self._abort()
        await self._wait_closed()

    async def _wait_closed(self) -> None:
        # Closing is asynchronous (TLS close_notify, then the socket): give it a moment so
        # a caller that stops its loop right after does not leak the socket. Bounded:
        # a peer that never completes the TLS shutdown must not hold us.
        gone, self._closing = self._closing, None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CLOSE_WAIT
        while gone is not None and not gone() and loop.time() < deadline:
            await asyncio.sleep(0.005)

    def _abort(self) -> None:
        wire, self._wire = self._wire, None
        if wire is not None:
            self._closing = wire.gone
            wire.close()
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            protocol = smtp.protocol
            if protocol is not None:
                self._closing = lambda: protocol.transport is None
            smtp.close()

    # --- sending

    async def send(self, mail_from: str, recipients: list[str], message: bytes) -> SendResult:
        """Send one message; every recipient gets a Classification in the result.

        Raises :class:`ValueError` for an unsafe address or message (nothing written),
        :class:`SessionError` when the connection fails (the session is then closed).
        """
        check_address(mail_from, allow_empty=True)
        for rcpt in recipients:
            check_address(rcpt)
        if not recipients:
            raise ValueError("no recipients")
        data = prepare_message(message)
        wire = self._wire
        if wire is None or not wire.is_open:
            raise SessionError(classify_failure("disconnect", "session is not open"))

        tx = _Transaction(pending=list(dict.fromkeys(recipients)))
        try:
            await self._transaction(wire, tx, mail_from, data)
        except (SMTPServerDisconnected, SMTPTimeoutError, TimeoutError, OSError) as exc:
            self._abort()
            raise SessionError(_failure(exc)) from exc
        if not wire.is_open:  # a 421 made us (or the server) hang up
            self._abort()
        return SendResult(
            recipients=tx.results,
            remote_host=self.host_name,
            remote_address=self.address,
            tls_version=self.tls_version,
            tls_cipher=self.tls_cipher,
            response=tx.response,
        )

    async def _transaction(self, wire: Wire, tx: _Transaction, mail_from: str, data: bytes) -> None:
        if self._needs_rset:
            await self._rset(wire)
        smtputf8 = self._settle_unsupported_utf8(tx, mail_from)
        if not tx.pending:
            return
        if not self._settle_oversize(tx, data):
            return
        # From here on a failure leaves server state behind: reset before the next message.
        self._needs_rset = True
        encoding = "utf-8" if smtputf8 else "ascii"
        mail = b" ".join(
            [b"MAIL", _path(b"FROM:", mail_from, encoding), *self._mail_params(data, smtputf8)]
        )
        rcpts = [b"RCPT " + _path(b"TO:", rcpt, encoding) for rcpt in tx.pending]
        if self.pipelining:
            start = await self._pipelined(wire, tx, mail, rcpts)
        else:
            start = await self._one_by_one(wire, tx, mail, rcpts)
        if start is None:
            return
        if start.code != 354:
            if start.code == 421:
                wire.close()
            tx.settle_all(classify_reply(start.code, start.message))
            return
        # dot_stuff(): RFC 5321 §4.5.2 transparency; the bytes are proven strict CRLF.
        wire.send(dot_stuff(data) + b".\r\n")
        final = await wire.reply(self.config.data_timeout)
        if final.code == 421:
            wire.close()
        tx.response = str(final)
        tx.settle_all(classify_reply(final.code, final.message))
        self._needs_rset = final.code != 250

    async def _pipelined(
        self, wire: Wire, tx: _Transaction, mail: bytes, rcpts: list[bytes]
    ) -> SMTPResponse | None:
        """MAIL, RCPTs and DATA in one write (RFC 2920); the reply to DATA, or None.

        Leaves ``tx.pending`` holding the accepted recipients (the message's audience).
        """
        wire.send(b"".join(line + b"\r\n" for line in (mail, *rcpts, b"DATA")))
        timeout = self.config.command_timeout
        replies: list[SMTPResponse] = []
        for _ in range(len(rcpts) + 2):
            reply = await wire.reply(timeout)
            if reply.code == 421:  # the server is closing: no further replies will come
                wire.close()
                tx.settle_all(classify_reply(reply.code, reply.message))
                return None
            replies.append(reply)
        mail_reply, rcpt_replies, start = replies[0], replies[1:-1], replies[-1]
        if mail_reply.code != 250:
            tx.settle_all(classify_reply(mail_reply.code, mail_reply.message))
            await self._abandon_data(wire, start)
            return None
        accepted: list[str] = []
        for rcpt, reply in zip(tx.pending, rcpt_replies, strict=True):
            if reply.code in (250, 251):
                accepted.append(rcpt)
            else:
                tx.results[rcpt] = classify_reply(reply.code, reply.message)
        tx.pending = accepted
        if not accepted:
            await self._abandon_data(wire, start)
            return None
        return start

    async def _abandon_data(self, wire: Wire, start: SMTPResponse) -> None:
        # RFC 2920 §3.1: a server that accepted DATA although no recipient was accepted
        # gets an empty message, ended at once; its reply does not matter.
        if start.code == 354:
            wire.send(b".\r\n")
            await wire.reply(self.config.data_timeout)

    async def _one_by_one(
        self, wire: Wire, tx: _Transaction, mail: bytes, rcpts: list[bytes]
    ) -> SMTPResponse | None:
        """MAIL, each RCPT, then DATA, each awaiting its reply; the reply to DATA or None."""
        timeout = self.config.command_timeout
        reply = await wire.command(mail, timeout)
        if reply.code != 250:
            if reply.code == 421:
                wire.close()
            tx.settle_all(classify_reply(reply.code, reply.message))
            return None
        accepted: list[str] = []
        for rcpt, line in zip(list(tx.pending), rcpts, strict=True):
            reply = await wire.command(line, timeout)
            tx.pending.remove(rcpt)
            if reply.code in (250, 251):
                accepted.append(rcpt)
                continue
            tx.results[rcpt] = classify_reply(reply.code, reply.message)
            if reply.code == 421:  # closing the channel: the rest share this fate
                wire.close()
                tx.pending += accepted
                tx.settle_all(tx.results[rcpt])
                return None
        tx.pending = accepted
        if not accepted:
            return None
        return await wire.command(b"DATA", timeout)

    async def _rset(self, wire: Wire) -> None:
        reply = await wire.command(b"RSET", self.config.command_timeout)
        if reply.code != 250:
            # A server that cannot reset cannot be trusted with the next envelope.
            raise SMTPServerDisconnected(f"RSET refused: {reply.code} {reply.message}")
        self._needs_rset = False

    def _settle_unsupported_utf8(self, tx: _Transaction, mail_from: str) -> bool:
        """Whether to use SMTPUTF8; non-ASCII addresses fail when it is not offered."""
        non_ascii = [a for a in (mail_from, *tx.pending) if not a.isascii()]
        if not non_ascii:
            return False
        if "smtputf8" in self._extensions:
            return True
        # RFC 6531 §3.5: X.6.7 "non-ASCII addresses not permitted". Permanent: this MX
        # will not grow SMTPUTF8 support within the retry window.
        refused = classify_reply(
            553, f"5.6.7 {self.host_name} does not offer SMTPUTF8; non-ASCII address"
        )
        if not mail_from.isascii():
            tx.settle_all(refused)
        else:
            for rcpt in [r for r in tx.pending if not r.isascii()]:
                tx.results[rcpt] = refused
                tx.pending.remove(rcpt)
        return False

    def _settle_oversize(self, tx: _Transaction, data: bytes) -> bool:
        """RFC 1870 §6.1: don't send what the server already said it will refuse."""
        limit = self.extensions.get("size", "")
        if limit.isdigit() and int(limit) > 0 and len(data) > int(limit):
            tx.settle_all(
                classify_reply(552, f"5.3.4 message size {len(data)} exceeds {limit} (SIZE)")
            )
            return False
        return True

    def _mail_params(self, data: bytes, smtputf8: bool) -> list[bytes]:
        ext = self.extensions
        params: list[bytes] = []
        if "size" in ext:  # RFC 1870
            params.append(b"SIZE=%d" % len(data))
        if "8bitmime" in ext and not data.isascii():  # RFC 6152
            params.append(b"BODY=8BITMIME")
        if smtputf8:  # RFC 6531
            params.append(b"SMTPUTF8")
        return params


def dot_stuff(data: bytes) -> bytes:
    """RFC 5321 §4.5.2 transparency: a line starting with "." gets one more.

    ``data`` is strict CRLF (see :func:`prepare_message`), so every line start is the
    beginning of ``data`` or follows a CRLF.
    """
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


def _auth_failure(text: str) -> Classification:
    # AUTH failures are our configuration, not the recipients' fault: 4.7.8, retried.
    return Classification(Outcome.SOFT_BOUNCE, BounceCategory.AUTHENTICATION, 451, "4.7.8", text)


def _path(prefix: bytes, address: str, encoding: str) -> bytes:
    return prefix + b"<" + address.encode(encoding) + b">"


def _failure(exc: BaseException) -> Classification:
    if isinstance(exc, SMTPTimeoutError | TimeoutError):
        return classify_failure("timeout", str(exc) or "timed out")
    return classify_failure("disconnect", str(exc) or type(exc).__name__)
