"""SMTP AUTH failures: lock the failing credentials at their address, slow the address.

A client behind a NAT shares its address with every other client there, so refusing the
address after a few failures (what this module did until F8) lets one misconfigured
client lock everyone out. The policy now:

* **Lockout of the pair.** The same user name and password that failed ``max_failures``
  times from one address within the window are answered ``454`` there without a lookup
  (a client stuck on a revoked token stops costing a database read per attempt). Other
  credentials from that address are checked as usual, so a correct one always gets in.
* **Delay every failure.** A failed AUTH is answered after ``failure_delay`` seconds, as
  Dovecot's ``auth_failure_delay`` and Postfix's ``smtpd_error_sleep_time`` do.
* **Tarpit the address, never refuse it.** Past ``tarpit_after`` failures with distinct
  credentials in the window (a spray, not one client repeating its wrong password),
  every AUTH from the address waits before it is checked, doubling from
  ``failure_delay`` up to ``max_delay`` (Dovecot's auth penalty). Credentials that
  succeeded from that address recently are exempt, so the clients that were working
  before a spray started do not notice it; a new correct credential is slowed, not
  refused. The per-client connection cap (``net/gate.py``) bounds how many guesses run
  in parallel.

In-process and per listener process, like the other counters without Redis. Credentials
are remembered only as keyed hashes (a random key per process), and every table is
bounded, so a spray of addresses or passwords cannot grow memory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable

from postroom.config import SubmissionSettings
from postroom.net.clients import client_key
from postroom.services.cache import TtlCache

# Successful logins are remembered this long for the tarpit's exemption.
KNOWN_GOOD_SECONDS = 24 * 3600.0


class SlidingCounts:
    """Events per key over a sliding window, with a bounded number of keys."""

    def __init__(self, window: float, clock: Callable[[], float], max_keys: int = 100_000) -> None:
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._events: dict[str, deque[float]] = {}

    def count(self, key: str) -> int:
        recent = self._recent(key)
        return 0 if recent is None else len(recent)

    def add(self, key: str) -> int:
        """Record one event of ``key``; returns its count in the window, this one included."""
        recent = self._recent(key)
        if recent is None:
            if len(self._events) >= self._max_keys:
                self._evict()
            recent = self._events[key] = deque()
        recent.append(self._clock())
        return len(recent)

    def __len__(self) -> int:
        return len(self._events)

    def _recent(self, key: str) -> deque[float] | None:
        recent = self._events.get(key)
        if recent is None:
            return None
        horizon = self._clock() - self._window
        while recent and recent[0] <= horizon:
            recent.popleft()
        if not recent:
            del self._events[key]
            return None
        return recent

    def _evict(self) -> None:
        # Forget the expired, then the oldest keys.
        for key in list(self._events):
            self._recent(key)
        while len(self._events) >= self._max_keys:
            del self._events[next(iter(self._events))]


class AuthThrottle:
    """The AUTH policy of the submission listeners (see the module docstring)."""

    def __init__(
        self,
        *,
        max_failures: int,
        window: float,
        failure_delay: float,
        tarpit_after: int,
        max_delay: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.failure_delay = failure_delay
        self._max_failures = max_failures
        self._tarpit_after = tarpit_after
        self._max_delay = max_delay
        self._by_address = SlidingCounts(window, clock, max_keys)
        self._by_pair = SlidingCounts(window, clock, max_keys)
        self._good: TtlCache[str, bool] = TtlCache(
            KNOWN_GOOD_SECONDS, max_entries=max_keys, clock=clock
        )
        self._key = secrets.token_bytes(32)

    @classmethod
    def from_settings(cls, config: SubmissionSettings) -> AuthThrottle:
        return cls(
            max_failures=config.auth_failures,
            window=config.auth_failure_window,
            failure_delay=config.auth_failure_delay,
            tarpit_after=config.auth_tarpit_after,
            max_delay=config.auth_tarpit_max_delay,
        )

    def credential(self, address: str, user: bytes, password: bytes) -> str:
        """The key of this login attempt: its client and a keyed hash of its credentials."""
        digest = hmac.new(self._key, user + b"\x00" + password, hashlib.sha256).hexdigest()
        return f"{client_key(address)} {digest[:32]}"

    def delay(self, address: str, credential: str) -> float:
        """Seconds to wait before checking: the tarpit of a spraying address, else 0."""
        excess = self._by_address.count(client_key(address)) - self._tarpit_after
        if excess < 0 or self._good.get(credential):
            return 0.0
        return float(min(self._max_delay, self.failure_delay * 2 ** min(excess, 32)))

    def locked(self, credential: str) -> bool:
        """Whether these credentials failed too often from this client to be checked again."""
        return self._by_pair.count(credential) >= self._max_failures

    def failed(self, address: str, credential: str) -> None:
        # Only distinct credentials count towards the tarpit (as in Dovecot): a client
        # repeating its one wrong password is locked out alone, and slows nobody else.
        if self._by_pair.add(credential) == 1:
            self._by_address.add(client_key(address))

    def succeeded(self, credential: str) -> None:
        self._good.put(credential, True)
