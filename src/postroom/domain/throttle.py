"""Per-destination-site traffic shaping: how fast, and over how many connections, to send.

Norms (reference/anchors.md, KumoMTA; reliability.md §2.2):

* KumoMTA shapes per *site*, the MX-set rollup: every domain hosted by Google shares one
  bucket, because the receiver rate-limits by its own infrastructure, not by recipient
  domain. Its TSA daemon slows a site down automatically when the receiver pushes back.
* Postfix caps per-destination concurrency (``initial_destination_concurrency = 5``,
  ``default_destination_concurrency_limit = 20``) and backs concurrency off on failures.
* Receivers signal "too fast" with ``421`` (RFC 5321 §3.8/§4.2.3, service closing the
  channel) or a ``450/451/452`` whose text says rate/throttle (Gmail ``4.7.28 unusual rate``,
  Yahoo ``[TSS04]``, Outlook ``try again later``).

What this module decides, for one site: whether a message may go now (a token bucket of
``messages_per_minute`` refilled continuously), whether another connection may open, and how
both limits react to pushback: a rate-limit reply halves them (floors: 1 message/minute and
1 connection), successes bring them back by 10 % of the configured values per minute,
never above the configured limits (additive increase, multiplicative decrease).

Pure state machine: ``now`` is monotonic seconds passed in by the caller.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

# Floors of the slow-down: never stop a site completely, the queue would only pile up.
MIN_RATE = 1.0  # messages per minute
MIN_CONNECTIONS = 1
# Recovery: this fraction of the configured limit comes back per minute of successes.
RECOVERY_PER_MINUTE = 0.10
# Several connections to one site usually hit the same 421 burst at once; one halving per
# burst, not one per connection, or ten parallel 421s would divide the rate by 1024.
SLOWDOWN_HOLDOFF = 5.0  # seconds


@dataclass(frozen=True)
class SiteLimits:
    """Configured ceilings for one site (frozen: the defaults table is shared)."""

    max_connections: int = 10
    messages_per_connection: int = 100
    messages_per_minute: float = 600.0

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.messages_per_connection < 1:
            raise ValueError("connection limits must be >= 1")
        if self.messages_per_minute < MIN_RATE:
            raise ValueError(f"messages_per_minute must be >= {MIN_RATE}")


# Sane starting points for the big receivers, keyed by site (the MX host's registered
# domain). Generous where the receiver is known to take volume from a clean sender,
# conservative where it is known to push back early (Yahoo's TSS04 deferrals).
FALLBACK_SITE_LIMITS = SiteLimits()
DEFAULT_SITE_LIMITS: dict[str, SiteLimits] = {
    # Gmail / Google Workspace (aspmx.l.google.com, gmail-smtp-in.l.google.com).
    "google.com": SiteLimits(
        max_connections=20, messages_per_connection=100, messages_per_minute=1200.0
    ),
    "googlemail.com": SiteLimits(
        max_connections=20, messages_per_connection=100, messages_per_minute=1200.0
    ),
    # Outlook.com / Microsoft 365 (*.mail.protection.outlook.com, *.olc.protection.outlook.com).
    "outlook.com": SiteLimits(
        max_connections=8, messages_per_connection=50, messages_per_minute=300.0
    ),
    "protection.outlook.com": SiteLimits(
        max_connections=8, messages_per_connection=50, messages_per_minute=300.0
    ),
    # Yahoo / AOL (mta*.am0.yahoodns.net).
    "yahoodns.net": SiteLimits(
        max_connections=4, messages_per_connection=20, messages_per_minute=120.0
    ),
}


def normalize_site(site: str) -> str:
    return site.strip().rstrip(".").lower()


def site_key(site: str, table: dict[str, SiteLimits] | None = None) -> str:
    """The shaping key of ``site``: the most specific table entry that is it or a parent.

    ``aspmx.l.google.com`` therefore shapes as ``google.com`` (one bucket for all of
    Google, as KumoMTA's MX rollup does), a Microsoft 365 MX as ``protection.outlook.com``
    rather than the less specific ``outlook.com``; an unknown site is its own key.
    """
    table = DEFAULT_SITE_LIMITS if table is None else table
    name = normalize_site(site)
    labels = name.split(".")
    for i in range(len(labels)):
        candidate = ".".join(labels[i:])
        if candidate in table:
            return candidate
    return name


def limits_for(
    site: str,
    table: dict[str, SiteLimits] | None = None,
    fallback: SiteLimits = FALLBACK_SITE_LIMITS,
) -> SiteLimits:
    """The configured limits of ``site`` (see ``site_key``), else ``fallback``."""
    table = DEFAULT_SITE_LIMITS if table is None else table
    return table.get(site_key(site, table), fallback)


_RATE_LIMIT_TEXT = re.compile(
    r"\brate|too many|try again later|tss04|throttl|unusual rate", re.IGNORECASE
)
# "452 4.5.3 Too many recipients" limits one transaction's RCPT count; the cure is to
# split the recipient batch, not to slow the whole site down.
_TOO_MANY_RECIPIENTS = re.compile(r"too many recipients", re.IGNORECASE)


def is_rate_limit_reply(code: int, text: str) -> bool:
    """True when the receiver is telling us to send more slowly.

    ``421`` always counts (the server is shedding connections); ``450``/``451``/``452``
    count when the text says so. ``\\brate`` only matches at a word start, so "generate"
    or "separate" in an unrelated reply do not trigger a slow-down.
    """
    if code == 421:
        return True
    if code not in (450, 451, 452):
        return False
    if _TOO_MANY_RECIPIENTS.search(text):
        return False
    return _RATE_LIMIT_TEXT.search(text) is not None


class SiteThrottle:
    """Rate, connection slots and adaptive slow-down for one site."""

    def __init__(self, limits: SiteLimits) -> None:
        self.limits = limits
        self._rate = limits.messages_per_minute
        # Connections recover in fractional steps; the usable limit is the floor.
        self._conn_level = float(limits.max_connections)
        self._open = 0
        self._tokens = self._capacity()  # start full: an idle site may burst at once
        self._last_refill: float | None = None
        self._last_adjust: float | None = None
        self._last_slowdown: float | None = None

    # -- rate ---------------------------------------------------------------------------

    @property
    def effective_rate(self) -> float:
        """Messages per minute currently allowed (after any slow-down)."""
        return self._rate

    @property
    def messages_per_connection(self) -> int:
        return self.limits.messages_per_connection

    def _capacity(self) -> float:
        # Burst size: one second's worth of traffic, at least one message, so a slowed
        # site cannot spend a large saved-up burst the moment it is allowed again.
        return max(1.0, self._rate / 60.0)

    def _refill(self, now: float) -> None:
        if self._last_refill is not None:
            # max(): a monotonic clock never goes back, but a wrong caller must not
            # drain the bucket by doing so.
            elapsed = max(0.0, now - self._last_refill)
            self._tokens = min(self._capacity(), self._tokens + elapsed * self._rate / 60.0)
        self._last_refill = now if self._last_refill is None else max(now, self._last_refill)

    def try_take(self, now: float) -> float:
        """Take one message slot: 0.0 if it may go now, else the seconds to wait first."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) * 60.0 / self._rate

    # -- connections --------------------------------------------------------------------

    @property
    def effective_connections(self) -> int:
        """Connections currently allowed at once (after any slow-down)."""
        return max(MIN_CONNECTIONS, math.floor(self._conn_level))

    @property
    def open_connections(self) -> int:
        return self._open

    def connection_available(self) -> bool:
        return self._open < self.effective_connections

    def open_connection(self) -> None:
        """Claim a connection slot; the caller checks ``connection_available()`` first."""
        if not self.connection_available():
            raise RuntimeError("no connection slot available for this site")
        self._open += 1

    def close_connection(self) -> None:
        if self._open == 0:
            raise RuntimeError("close_connection() without an open connection")
        self._open -= 1

    # -- adaptation ---------------------------------------------------------------------

    def on_rate_limited(self, now: float) -> None:
        """The receiver pushed back (421 / rate-limit 4xx): halve rate and connections.

        Open connections are not cut; new ones wait until enough have closed.
        """
        self._refill(now)  # tokens earned at the old rate are kept
        self._last_adjust = now  # recovery counts from the latest pushback
        if self._last_slowdown is not None and now - self._last_slowdown < SLOWDOWN_HOLDOFF:
            return
        self._last_slowdown = now
        self._rate = max(MIN_RATE, self._rate / 2.0)
        self._conn_level = max(float(MIN_CONNECTIONS), math.floor(self._conn_level) / 2.0)
        self._tokens = min(self._tokens, self._capacity())

    def on_success(self, now: float) -> None:
        """A message was accepted: recover towards the configured limits.

        Recovery is proportional to the time since the last adjustment, so it is
        "+10 % of the configured limit per minute" whatever the message rate.
        """
        self._refill(now)
        if self._last_adjust is None:
            self._last_adjust = now
            return
        minutes = max(0.0, now - self._last_adjust) / 60.0
        self._last_adjust = max(now, self._last_adjust)
        step = RECOVERY_PER_MINUTE * minutes
        self._rate = min(
            self.limits.messages_per_minute,
            self._rate + step * self.limits.messages_per_minute,
        )
        self._conn_level = min(
            float(self.limits.max_connections),
            self._conn_level + step * self.limits.max_connections,
        )


@dataclass
class Throttles:
    """One ``SiteThrottle`` per site key (see ``site_key``), created on first use."""

    table: dict[str, SiteLimits] = field(default_factory=lambda: dict(DEFAULT_SITE_LIMITS))
    fallback: SiteLimits = FALLBACK_SITE_LIMITS
    _sites: dict[str, SiteThrottle] = field(default_factory=dict, init=False, repr=False)

    def for_site(self, site: str) -> SiteThrottle:
        key = site_key(site, self.table)
        throttle = self._sites.get(key)
        if throttle is None:
            throttle = SiteThrottle(self.table.get(key, self.fallback))
            self._sites[key] = throttle
        return throttle
