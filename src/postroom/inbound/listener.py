"""An aiosmtpd handler for the return-path domains' MX: protocol here, policy in services.

Receives RFC 3464 delivery status notifications and RFC 5965 feedback reports for the
signed return paths Postroom sends from, and for the role addresses in
``bounces.local_parts``; and the ``mailto:`` unsubscribes of List-Unsubscribe
(``u+<token>@<return-path domain>``, :mod:`postroom.services.hits`). Every other
recipient is refused at ``RCPT TO`` (``550 5.1.1``), so mail for unknown local parts
and forged return paths never reaches the parser. The size limit is announced in EHLO
(``SIZE``) and enforced by aiosmtpd (``552``). Before anything parses it, a message is
held to the rules of submission (:mod:`postroom.domain.rawmail`): NUL, bare CR or LF and
over-long lines, a header section over the limits, or MIME nested past
``limits.max_mime_depth`` are refused for good (5xx), never answered 451 to be retried
for ever. Postroom never relays from here:
accepted mail is parsed and dropped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket

from aiosmtpd.smtp import SMTP, Envelope, Session

from postroom.domain.rawmail import Unacceptable, check_raw
from postroom.errors import StoreUnavailable
from postroom.mta import listen
from postroom.net import budget
from postroom.net.acceptor import Acceptor
from postroom.net.gate import ConnectionGate, Slot
from postroom.services import Services, bounces, hits

log = logging.getLogger("postroom.inbound")
_CHECK_INLINE_BYTES = 64 * 1024


class InboundHandler:
    """aiosmtpd hooks: ``handle_RCPT`` decides who we accept, ``handle_DATA`` processes."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook names)
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= self.services.settings.bounces.max_recipients:
            return "452 4.5.3 Too many recipients"
        if not (
            bounces.accepts_recipient(self.services, address)
            or hits.unsubscribe_address(self.services, address) is not None
        ):
            return "550 5.1.1 No such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        unsubscribing = [
            a for a in envelope.rcpt_tos if hits.unsubscribe_address(self.services, a) is not None
        ]
        if unsubscribing:
            # RFC 2369 mailto: unsubscribes; the message itself says nothing we need.
            peer = session.peer[0] if isinstance(session.peer, tuple) else ""
            try:
                made = await hits.unsubscribe_by_mail(self.services, unsubscribing, str(peer))
            except Exception:
                log.exception("unsubscribe by mail from %s not processed", envelope.mail_from)
                return "451 4.3.0 Temporary processing failure, try again later"
            log.info("inbound unsubscribe: %d recipient(s)", made)
            return "250 2.0.0 OK"
        try:
            if len(raw) <= _CHECK_INLINE_BYTES:
                check_raw(raw, self.services.raw_limits())
            else:  # a scan of megabytes would hold up every other session
                await asyncio.to_thread(check_raw, raw, self.services.raw_limits())
        except Unacceptable as exc:
            log.info("inbound message from %s refused: %s", envelope.mail_from, exc.text)
            return exc.reply
        try:
            result = await bounces.process(self.services, list(envelope.rcpt_tos), raw)
        except Exception as error:
            if not isinstance(error, StoreUnavailable):  # that one is logged once by storage
                log.exception("inbound message from %s not processed", envelope.mail_from)
            return "451 4.3.0 Temporary processing failure, try again later"
        log.info(
            "inbound %s for delivery %s: events %s, %d suppression(s)",
            result.kind.value,
            result.delivery_id,
            ",".join(result.events) or "none",
            result.suppressions,
        )
        return "250 2.0.0 OK"


def smtp_factory(services: Services, slot: Slot) -> SMTP:
    """One SMTP protocol instance per admitted connection."""
    cfg = services.settings.bounces
    return listen.GuardedSMTP(
        InboundHandler(services),
        slot=slot,
        limits=services.settings.connections,
        idle_timeout=cfg.inbound_idle_timeout,
        session_timeout=cfg.inbound_session_timeout,
        data_size_limit=cfg.max_message_bytes,
        hostname=services.settings.domains.mail_host,
        ident="Postroom inbound",
        # Bounces arrive from anywhere with MAIL FROM:<>; SMTPUTF8 for i18n reports.
        enable_SMTPUTF8=True,
    )


async def start(
    services: Services, sock: socket.socket, gate: ConnectionGate | None = None
) -> Acceptor:
    """Serve the inbound listener on an already bound socket until closed, behind ``gate``
    (by default one with the ``connections.inbound`` caps)."""
    gate = gate or budget.inbound_gate(services.settings)
    factory = functools.partial(smtp_factory, services)
    [server] = await listen.start([listen.Listener(factory, sock, gate)])
    return server
