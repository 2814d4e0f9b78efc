"""The submission listeners: aiosmtpd sessions with Postroom's connection rules.

One :class:`SubmissionSMTP` per connection. On top of aiosmtpd (SIZE, 8BITMIME,
SMTPUTF8, STARTTLS that discards anything pipelined before the handshake, DATA ended only
by CRLF.CRLF) it adds:

* TLS before AUTH: AUTH is offered once the connection is encrypted (STARTTLS, or the
  implicit-TLS port); ``allow_plaintext_loopback`` lifts that for loopback clients only.
  On a STARTTLS port with a certificate, nothing but EHLO/NOOP/QUIT/STARTTLS is accepted
  in plaintext. MAIL, RCPT and DATA need AUTH (never an open relay).
* a limit on commands before AUTH, a session time limit, and line length (``max_line_octets``).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

from postroom.config import SubmissionSettings
from postroom.domain.streams import Stream
from postroom.mta import listen
from postroom.services import Services
from postroom.services.auth import Authenticator
from postroom.submission.handler import SubmissionHandler
from postroom.submission.throttle import AuthThrottle

log = logging.getLogger("postroom.submission")

IDENT = "Postroom ESMTP"
TOO_MANY_COMMANDS = b"421 4.7.0 Too many commands before authentication; closing\r\n"
SESSION_EXPIRED = b"421 4.4.2 Session time limit reached; closing\r\n"


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The server-side TLS context of the submission listeners (TLS 1.2 or later)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


class SubmissionSMTP(SMTP):
    """One submission session."""

    def __init__(
        self,
        handler: SubmissionHandler,
        *,
        config: SubmissionSettings,
        context: ssl.SSLContext | None,
        implicit_tls: bool,
        hostname: str,
        data_size_limit: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        # aiosmtpd sizes its reader with this (a data line may carry a transparency dot).
        self.line_length_limit = config.max_line_octets + 1
        self._config = config
        self._pre_auth_commands = 0
        self._session_timer: asyncio.TimerHandle | None = None
        super().__init__(
            handler,
            data_size_limit=data_size_limit,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident=IDENT,
            tls_context=None if implicit_tls else context,
            require_starttls=not implicit_tls and context is not None,
            timeout=config.idle_timeout,
            auth_required=True,
            auth_require_tls=True,
            loop=loop,
        )
        self._smtp_methods = {
            name: self._counted(method) for name, method in self._smtp_methods.items()
        }

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:  # the TCP connection, not the STARTTLS upgrade
            encrypted = transport.get_extra_info("ssl_object") is not None
            loopback = self._config.allow_plaintext_loopback and _is_loopback(
                transport.get_extra_info("peername")
            )
            # aiosmtpd only knows TLS it negotiated itself (STARTTLS): an implicit-TLS
            # connection, or a loopback client in development, may AUTH as it is.
            self._auth_require_tls = not (encrypted or loopback)
            if loopback:
                self.require_starttls = False
            self._session_timer = self.loop.call_later(
                self._config.session_timeout, self._session_expired
            )
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._session_timer is not None:
            self._session_timer.cancel()
        super().connection_lost(error)

    def _session_expired(self) -> None:
        if self.transport is not None:
            self._writer.write(SESSION_EXPIRED)
            self.transport.close()

    def _counted(
        self, method: Callable[[str | None], Awaitable[None]]
    ) -> Callable[[str | None], Awaitable[None]]:
        """Wrap a command so that too many of them before AUTH end the session."""

        @functools.wraps(method)
        async def counted(arg: str | None) -> None:
            if self.session is not None and not self.session.authenticated:
                self._pre_auth_commands += 1
                if self._pre_auth_commands > self._config.max_commands_before_auth:
                    self._writer.write(TOO_MANY_COMMANDS)
                    if self.transport is not None:
                        self.transport.close()
                    return
            await method(arg)

        return counted


def _is_loopback(peer: Any) -> bool:
    if not isinstance(peer, tuple) or not peer:
        return False
    try:
        return ipaddress.ip_address(str(peer[0]).split("%")[0]).is_loopback
    except ValueError:
        return False


async def start_listeners(
    services: Services,
    sockets: dict[int, socket.socket],
    authenticator: Authenticator,
) -> list[asyncio.Server]:
    """Start every configured submission listener on its already bound socket.

    Implicit-TLS listeners need the server's certificate; without one they are skipped.
    """
    settings = services.settings
    config = settings.submission
    context = None
    if settings.server.tls_cert and settings.server.tls_key:
        context = tls_context(settings.server.tls_cert, settings.server.tls_key)
    if context is None and not config.allow_plaintext_loopback:
        log.warning(
            "SMTP submission has no TLS certificate (--tls-cert/--tls-key): AUTH is not "
            "offered, so no client can send over SMTP"
        )
    hostname = config.hostname or settings.domains.mail_host
    throttle = AuthThrottle.from_settings(config)
    loop = asyncio.get_running_loop()
    listeners = []
    for stream_name, port, implicit in config.listeners():
        if implicit and context is None:
            continue
        handler = SubmissionHandler(services, Stream(stream_name), authenticator, throttle)
        factory = functools.partial(
            SubmissionSMTP,
            handler,
            config=config,
            context=context,
            implicit_tls=implicit,
            hostname=hostname,
            data_size_limit=settings.limits.max_message_bytes,
            loop=loop,
        )
        listeners.append(listen.Listener(factory, sockets[port], context if implicit else None))
    return await listen.start(listeners)
