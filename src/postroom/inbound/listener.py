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

It also receives the mail of inbound inboxes (``<inbox>@<inbound domain>``,
:mod:`postroom.services.inbound_mail`): held to ``inbound.max_message_bytes`` (552),
checked (SPF, DKIM, DMARC, spam score; 550 5.7.1 when refused), stored, and forwarded by
the inbox's forward rules (:mod:`postroom.services.inbound_rules`). A message for
inboxes and for bounce addresses at once is handled by both.
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
from postroom.services import Services, bounces, hits, inbound_mail, inbound_rules

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
        if (
            bounces.accepts_recipient(self.services, address)
            or hits.unsubscribe_address(self.services, address) is not None
        ):
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        try:
            inbox = await inbound_mail.inbox_for_address(self.services, address)
        except StoreUnavailable:
            return "451 4.3.0 Temporary processing failure, try again later"
        if inbox is None:
            return "550 5.1.1 No such recipient here"
        self._inboxes(envelope)[address] = inbox
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    @staticmethod
    def _inboxes(envelope: Envelope) -> dict[str, dict[str, object]]:
        """The inbound inboxes of this envelope's recipients, found at RCPT TO."""
        found: dict[str, dict[str, object]] | None = getattr(envelope, "postroom_inboxes", None)
        if found is None:
            found = {}
            envelope.postroom_inboxes = found  # type: ignore[attr-defined]
        return found

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        inboxes = self._inboxes(envelope)
        if inboxes:
            reply = await self._receive(session, envelope, raw, inboxes)
            others = [a for a in envelope.rcpt_tos if a not in inboxes]
            if not others or not reply.startswith("250"):
                return reply
            envelope.rcpt_tos = others  # and the bounce addresses below
        # The SMTP limit is the larger of the two (SIZE in EHLO); bounces keep their own.
        if len(raw) > self.services.settings.bounces.max_message_bytes:
            return "552 5.3.4 Message size exceeds fixed maximum message size"
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

    async def _receive(
        self,
        session: Session,
        envelope: Envelope,
        raw: bytes,
        inboxes: dict[str, dict[str, object]],
    ) -> str:
        """Mail for inbound inboxes: size, shape, then inbound_mail.receive."""
        if len(raw) > self.services.settings.inbound.max_message_bytes:
            return "552 5.3.4 Message too big for this inbox"
        try:
            if len(raw) <= _CHECK_INLINE_BYTES:
                check_raw(raw, self.services.raw_limits())
            else:
                await asyncio.to_thread(check_raw, raw, self.services.raw_limits())
        except Unacceptable as exc:
            return exc.reply
        peer = session.peer[0] if isinstance(session.peer, tuple) else ""
        try:
            received = await inbound_mail.receive(
                self.services,
                list(inboxes.values()),
                raw,
                client_ip=str(peer),
                helo=str(session.host_name or ""),
                mail_from=str(envelope.mail_from or ""),
            )
        except inbound_mail.Refused as refused:
            log.info("inbound mail from %s refused: %s", envelope.mail_from, refused.reply)
            return refused.reply
        except Exception as error:
            if not isinstance(error, StoreUnavailable):
                log.exception("inbound mail from %s not stored", envelope.mail_from)
            return "451 4.3.0 Temporary processing failure, try again later"
        log.info(
            "inbound mail from %s stored as %s (spam score %s)",
            envelope.mail_from,
            ",".join(map(str, received.message_ids)),
            received.spam_score,
        )
        try:
            await inbound_rules.forward_received(self.services, received)
        except Exception as error:
            # Stored is stored: the sender must not send it again because a forward failed.
            if not isinstance(error, StoreUnavailable):
                log.exception("forward rules of inbound mail from %s not run", envelope.mail_from)
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
        # The larger of the two limits; mail for inboxes is held to its own after DATA.
        data_size_limit=max(cfg.max_message_bytes, services.settings.inbound.max_message_bytes),
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
