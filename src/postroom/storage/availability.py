"""Whether the database can be reached: which errors say it cannot, and an outage log.

A PostgreSQL restart, a network cut or SQLite locked past its busy timeout is not a bug
in a statement: the same request can succeed a moment later, so the entry points answer
it as a temporary failure (``StoreUnavailable``: API 503, SMTP 451). :class:`Availability`
logs such an outage once when it begins and once when it ends, not once per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import exc as sa_exc

log = logging.getLogger("postroom.storage")

# SQLite errors that mean "not now" rather than a bug in a statement.
_SQLITE_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "unable to open database",
    "disk i/o error",
    "database or disk is full",
)


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached, as opposed to a bad statement."""
    if isinstance(error, sa_exc.TimeoutError):
        return True  # the pool had no connection to give in time
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlite = type(error.orig).__module__.startswith("sqlite3")
    if isinstance(error, sa_exc.InterfaceError):
        # psycopg: the connection closed under us; sqlite3: a value it cannot bind (a bug).
        return not sqlite
    if not isinstance(error, sa_exc.OperationalError):
        return False
    if sqlite:
        # SQLite reports its syntax errors as OperationalError too.
        return str(error.orig).lower().startswith(_SQLITE_TRANSIENT)
    return True  # PostgreSQL: connection failures, shutdowns, "too many clients"


class Availability:
    """Logs an outage once when it begins and once when it ends (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._refused = 0

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self._refused += 1
            if self._since is not None:
                return
            self._since = self._clock()
        summary = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        log.warning(
            "database unreachable (%s); requests that need it get a temporary failure "
            "(API 503, SMTP 451) until it answers again",
            summary,
        )

    def succeeded(self) -> None:
        if self._since is None:  # the common case: no lock
            return
        with self._lock:
            if self._since is None:
                return
            lasted, refused = self._clock() - self._since, self._refused
            self._since, self._refused = None, 0
        log.warning(
            "database reachable again after %.1f s (%d operation(s) refused meanwhile)",
            lasted,
            refused,
        )
