"""Outbound sessions reused within one worker round, keyed by address.

A round often carries several messages to one MX host (many recipients' domains are
hosted by one operator); they share one connection, up to ``messages_per_connection``
messages, and every session is closed (QUIT) at the end of the round.

:class:`PooledSession` adds to :class:`~postroom.mta.session.Session` what the delivery
engine needs: the local address of the connection (the event's ``sending_ip``) and SMTP
AUTH (RFC 4954) for relay mode, after STARTTLS.
"""

from __future__ import annotations

from aiosmtplib import SMTPAuthenticationError, SMTPException

from postroom.mta.classify import BounceCategory, Classification, Outcome, classify_failure
from postroom.mta.session import Session, SessionConfig, SessionError


class PooledSession(Session):
    """A session that knows its local address and can authenticate (relay mode)."""

    def __init__(
        self,
        config: SessionConfig,
        host_name: str,
        address: str,
        *,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(config, host_name, address)
        self.credentials = credentials
        self.local_address: str | None = None
        self.sent = 0

    async def open(self) -> None:
        await super().open()
        smtp = self._smtp
        if smtp is None:  # pragma: no cover - open() raises instead
            raise SessionError(classify_failure("disconnect", "session is not open"))
        sockname = smtp.get_transport_info("sockname")
        if isinstance(sockname, tuple) and sockname:
            self.local_address = str(sockname[0])
        if self.credentials is None:
            return
        username, password = self.credentials
        try:
            await smtp.login(username, password, timeout=self.config.command_timeout)
        except SMTPAuthenticationError as exc:
            await self.close()
            # Wrong credentials are our configuration, not the recipients' fault: retry.
            raise SessionError(
                Classification(
                    Outcome.SOFT_BOUNCE,
                    BounceCategory.AUTHENTICATION,
                    451,
                    "4.7.8",
                    f"smarthost AUTH failed: {exc.code} {exc.message}",
                )
            ) from exc
        except (SMTPException, OSError) as exc:
            await self.close()
            raise SessionError(classify_failure("disconnect", f"AUTH failed: {exc}")) from exc


class SessionPool:
    """Open sessions by address, reused across the groups of one round."""

    def __init__(
        self,
        config: SessionConfig,
        *,
        credentials: tuple[str, str] | None = None,
        messages_per_connection: int = 100,
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.messages_per_connection = messages_per_connection
        # The destination site of the group being delivered; recorded per session for
        # the open-connections metric.
        self.site = ""
        self._sessions: dict[str, PooledSession] = {}
        self._sites: dict[str, str] = {}

    def cached(self, address: str) -> PooledSession | None:
        """An open session to ``address`` with room for another message, if any."""
        session = self._sessions.get(address)
        if session is not None and session.is_open and session.sent < self.messages_per_connection:
            return session
        return None

    async def open(self, host_name: str, address: str) -> PooledSession:
        """A new session to ``address`` (closing a spent one); raises SessionError."""
        await self.discard(address)
        session = PooledSession(self.config, host_name, address, credentials=self.credentials)
        await session.open()
        self._sessions[address] = session
        self._sites[address] = self.site
        return session

    def open_by_site(self) -> dict[str, int]:
        """Open connections per destination site (``postroom_smtp_connections_open``)."""
        counts: dict[str, int] = {}
        for address, session in list(self._sessions.items()):
            if session.is_open:
                site = self._sites.get(address, "")
                counts[site] = counts.get(site, 0) + 1
        return counts

    async def discard(self, address: str) -> None:
        session = self._sessions.pop(address, None)
        if session is not None:
            await session.close()

    async def close_all(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
