"""Outbound sessions reused within one delivery lane, keyed by (source, destination).

A lane (see :mod:`postroom.mta.lanes`) carries a site's messages one after another; the
messages it sends to the same MX address from the same sending IP share one connection,
up to ``messages_per_connection``, and every session is closed (QUIT) when the lane is
done. A lane owns its pool: sessions are never shared between concurrent senders, which
is what lets several lanes talk to one site at once.
"""

from __future__ import annotations

from postroom.mta.session import Session, SessionConfig

# (local source address or "" for the default route, remote address, TLS policy): a
# session verified for MTA-STS is not the opportunistic one to the same address.
_Key = tuple[str, str, str]


class SessionPool:
    """Open sessions by (source, address) for one lane."""

    def __init__(self, config: SessionConfig, *, messages_per_connection: int = 100) -> None:
        self.config = config
        self.messages_per_connection = messages_per_connection
        self._sessions: dict[_Key, Session] = {}

    def cached(
        self, address: str, source: str | None = None, config: SessionConfig | None = None
    ) -> Session | None:
        """An open session to ``address`` with room for another message, if any."""
        session = self._sessions.get(self._key(address, source, config))
        if session is not None and session.is_open and session.sent < self.messages_per_connection:
            return session
        return None

    async def open(
        self,
        host_name: str,
        address: str,
        source: str | None = None,
        config: SessionConfig | None = None,
    ) -> Session:
        """A new session to ``address`` (closing a spent one); raises SessionError.

        ``config`` overrides the pool's (MTA-STS enforcement needs a verifying one).
        """
        await self.discard(address, source, config)
        session = Session(config or self.config, host_name, address, source_address=source)
        await session.open()
        self._sessions[self._key(address, source, config)] = session
        return session

    def _key(self, address: str, source: str | None, config: SessionConfig | None) -> _Key:
        return (source or "", address, (config or self.config).tls)

    @property
    def open_count(self) -> int:
        return sum(1 for s in self._sessions.values() if s.is_open)

    async def discard(
        self, address: str, source: str | None = None, config: SessionConfig | None = None
    ) -> None:
        session = self._sessions.pop(self._key(address, source, config), None)
        if session is not None:
            await session.close()

    async def close_all(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
