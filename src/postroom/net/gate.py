"""How many connections one listener admits: in all, and per client address.

Each listener (transactional API, bulk API, each SMTP submission port, the inbound MX)
has its own :class:`ConnectionGate`, so a flood on one port uses up that port's share
of the process's open files and nothing else (``net/budget.py`` keeps the shares under
the open-file limit). The accept loop (``net/acceptor.py``) asks the gate for a
:class:`Slot` for every connection it accepts; when the gate says no, the connection is
answered and closed at once instead of waiting in the backlog or holding a file.

A refusal is logged as a WARNING naming the cap and the setting that changes it, at most
once per ``warn_interval`` per listener (the refusals in between are counted in the next
warning), so that a flood cannot turn the log into the next thing to fill up. Postfix's
equivalents: ``smtpd_client_connection_count_limit`` (per client, default 50) checked by
anvil, and the service's process limit (in all, default 100).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from postroom.net.clients import client_key

log = logging.getLogger("postroom.net")


@dataclass(frozen=True, slots=True)
class Caps:
    """One listener's caps: connections open at once, in all and from one client."""

    max_connections: int
    max_per_client: int


class Over(Enum):
    """Why a connection was refused."""

    TOTAL = "total"
    CLIENT = "client"


class Slot:
    """One admitted connection's place; released exactly once, when the connection ends."""

    __slots__ = ("_gate", "_key", "released")

    def __init__(self, gate: ConnectionGate, key: str) -> None:
        self._gate = gate
        self._key = key
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._gate._release(self._key)


class ConnectionGate:
    """Counts one listener's open connections and admits new ones within its caps."""

    def __init__(
        self,
        name: str,
        caps: Caps,
        *,
        setting: str,
        warn_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.caps = caps
        self._setting = setting
        self._warn_interval = warn_interval
        self._clock = clock
        self._open = 0
        self._by_client: dict[str, int] = {}
        self._next_warning = 0.0
        self._unreported = 0
        self.refused = {Over.TOTAL: 0, Over.CLIENT: 0}

    @property
    def open(self) -> int:
        return self._open

    def open_from(self, address: str) -> int:
        return self._by_client.get(client_key(address), 0)

    def admit(self, address: str) -> Slot | Over:
        """A slot for a new connection from ``address``, or why there is none."""
        key = client_key(address)
        mine = self._by_client.get(key, 0)
        if self._open >= self.caps.max_connections:
            return self._refuse(Over.TOTAL, key)
        if mine >= self.caps.max_per_client:
            return self._refuse(Over.CLIENT, key)
        self._open += 1
        self._by_client[key] = mine + 1
        return Slot(self, key)

    def _release(self, key: str) -> None:
        self._open -= 1
        left = self._by_client[key] - 1
        if left:
            self._by_client[key] = left
        else:
            del self._by_client[key]

    def _refuse(self, over: Over, key: str) -> Over:
        self.refused[over] += 1
        now = self._clock()
        if now < self._next_warning:
            self._unreported += 1
            return over
        self._next_warning = now + self._warn_interval
        if over is Over.TOTAL:
            why = (
                f"{self._open} connections are open, its cap "
                f"({self._setting}.max_connections = {self.caps.max_connections})"
            )
        else:
            why = (
                f"{self._by_client.get(key, 0)} connections from {key} are open, the cap per "
                f"client ({self._setting}.max_per_client = {self.caps.max_per_client})"
            )
        since = ""
        if self._unreported:
            since = f"; {self._unreported} more refused since the last warning"
        self._unreported = 0
        log.warning("%s refused a connection from %s: %s%s", self.name, key, why, since)
        return over

    def out_of_files(self, error: OSError) -> None:
        """The process could not accept (no file descriptor left): say so, rate-limited."""
        now = self._clock()
        if now < self._next_warning:
            return
        self._next_warning = now + self._warn_interval
        log.warning(
            "%s cannot accept connections: %s; the process is out of open files (raise its "
            "limit, or lower the connections.* caps)",
            self.name,
            error.strerror or error,
        )
