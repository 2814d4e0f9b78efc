"""The submission listeners: aiosmtpd sessions with Postroom's connection rules.

One :class:`SubmissionSMTP` per connection. On top of aiosmtpd (SIZE, 8BITMIME,
SMTPUTF8, STARTTLS that discards anything pipelined before the handshake, DATA ended only
by CRLF.CRLF) it adds:

* TLS before AUTH: AUTH is offered once the connection is encrypted (STARTTLS, or the
  implicit-TLS port); ``allow_plaintext_loopback`` lifts that for loopback clients only.
  On a STARTTLS port with a certificate, nothing but EHLO/NOOP/QUIT/STARTTLS is accepted
  in plaintext. MAIL, RCPT and DATA need AUTH (never an open relay).
* a limit on commands before AUTH and on line length (``max_line_octets``); the idle and
  session time limits, junk-command caps and connection caps are every listener's
  (:class:`postroom.mta.listen.GuardedSMTP`, ``net/gate.py``).
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

from postroom.config import ConnectionSettings, SubmissionSettings
from postroom.domain.streams import Stream
from postroom.mta import listen
from postroom.net import budget
from postroom.net.acceptor import Acceptor
from postroom.net.gate import ConnectionGate, Slot
from postroom.services import Services
from postroom.services.auth import Authenticator
from postroom.submission.handler import SubmissionHandler
from postroom.submission.throttle import AuthThrottle

log = logging.getLogger("postroom.submission")

IDENT = "Postroom ESMTP"
TOO_MANY_COMMANDS = b"421 4.7.0 Too many commands before authentication; closing\r\n"


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The server-side TLS context of the submission listeners (TLS 1.2 or later)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


class SubmissionSMTP(listen.GuardedSMTP):
    """One submission session."""

    def __init__(
        self,
        handler: SubmissionHandler,
        slot: Slot,
        *,
        config: SubmissionSettings,
        limits: ConnectionSettings,
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
        super().__init__(
            handler,
            slot=slot,
            limits=limits,
            idle_timeout=config.idle_timeout,
            session_timeout=config.session_timeout,
            data_size_limit=data_size_limit,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident=IDENT,
            tls_context=None if implicit_tls else context,
            require_starttls=not implicit_tls and context is not None,
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
        super().connection_made(transport)

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
    gates: dict[int, ConnectionGate] | None = None,
) -> list[Acceptor]:
    """Start every configured submission listener on its already bound socket, behind its
    gate (``gates`` by port; by default each listener's caps from the settings).

    Implicit-TLS listeners need a certificate (``Settings.smtp_tls_files``); without one
    they are skipped.
    """
    settings = services.settings
    config = settings.submission
    files = settings.smtp_tls_files()
    context = tls_context(*files) if files else None
    if context is None and not config.allow_plaintext_loopback:
        log.warning(
            "SMTP submission has no TLS certificate (--tls-cert/--tls-key, "
            "submission.tls_cert or submission.self_signed): AUTH is not offered, so no "
            "client can send over SMTP"
        )
    hostname = config.hostname or settings.domains.mail_host
    throttle = AuthThrottle.from_settings(config)
    gates = gates if gates is not None else budget.gates_for(settings)
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
            limits=settings.connections,
            context=context,
            implicit_tls=implicit,
            hostname=hostname,
            data_size_limit=settings.limits.max_message_bytes,
            loop=loop,
        )
        listeners.append(
            listen.Listener(
                factory,
                sockets[port],
                gates[port],
                context if implicit else None,
                settings.connections.tls_handshake_timeout,
            )
        )
    return await listen.start(listeners)
