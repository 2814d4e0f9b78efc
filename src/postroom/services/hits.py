"""What a hit on a tracking URL does: the open, click, unsubscribe and opt-out use cases.

The tracking listener (:mod:`postroom.api.tracking`) and the inbound listener (mailto
unsubscribes) call these. Each verifies the token first (:mod:`postroom.services.tracking`):
a token that does not verify, names another kind, or names a delivery that no longer
exists does nothing and answers None, which the listener turns into a 404; no database
is touched for a forged token.

Every hit that counts is an event (``open``, ``click``, ``unsubscribe``) written in the
same transaction as the state it changes, with the details webhooks and email logs read:
``ip``, ``user_agent``, ``url`` (clicks), ``machine`` (None for a person, else what kind
of machine: :mod:`postroom.domain.machines`), ``unique`` (the first open or click of
the delivery by a person: the conditional update of ``opened_at``/``clicked_at`` decides,
so two processes never both count one), and ``proxy`` when a person's mail client
fetched through one. An unsubscribe also makes a domain-scoped ``unsubscription``
suppression (:func:`postroom.services.suppressions.record_from_events`); asking twice
records it once.

The listener reuses what it read about a delivery and its links for
``tracking.cache_seconds`` (a delivery's facts do not change once it is delivered), and
remembers each delivery's recent clicks in memory to recognise a scanner's burst.
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain import machines
from postroom.domain.deliveries import DeliveryState
from postroom.domain.events import EventKind
from postroom.domain.tracktokens import Kind, Token
from postroom.events.recorder import delivery_event
from postroom.services import Services, optouts, suppressions, tracking
from postroom.services.cache import TtlCache
from postroom.services.domains import ascii_name
from postroom.storage.repos import messages as message_repo
from postroom.storage.repos import suppressions as suppression_repo
from postroom.storage.repos import tracking as repo

MAX_FIELD = 1000  # longest user agent / IP kept
MAX_IN_FLIGHT = 5000  # hits answered and not yet committed
_BURSTS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Request:
    """The facts of one HTTP request to a tracking URL."""

    method: str
    ip: str
    user_agent: str
    host: str = ""  # the Host header, without port


@dataclass(frozen=True, slots=True)
class Target:
    """A verified token and the delivery it names."""

    token: Token
    delivery: dict[str, Any]
    url: str | None = None  # the click's original URL
    links: int = 0


def load_rules(services: Services) -> machines.Rules:
    """The machine-opener rules of the settings (Apple's list read once, if configured)."""
    cfg = services.settings.tracking
    apple = machines.networks(machines.APPLE_NETWORKS)
    if cfg.apple_ranges_file is not None:
        text = Path(cfg.apple_ranges_file).read_text(encoding="utf-8", errors="replace")
        apple += machines.apple_egress_networks(text)
    return machines.Rules(
        apple=machines.NetworkSet(apple),
        click_after_delivery_seconds=cfg.click_after_delivery_seconds,
        burst_links=cfg.burst_links,
    )


class Tracker:
    """The use cases of one tracking listener, with its caches."""

    def __init__(self, services: Services, rules: machines.Rules | None = None) -> None:
        self.services = services
        self.rules = rules or load_rules(services)
        seconds = services.settings.tracking.cache_seconds
        self._targets: TtlCache[tuple[str, int], Target] = TtlCache(seconds)
        self._bursts: OrderedDict[str, dict[int, float]] = OrderedDict()
        # (delivery, column) whose first person open/click is known to be recorded: no
        # conditional UPDATE is needed for them any more.
        self._firsts: TtlCache[tuple[str, str], bool] = TtlCache(seconds)
        self._in_flight = 0

    # --- the use cases --------------------------------------------------------------------

    async def open(self, text: str, request: Request) -> Recording | None:
        """The open to record (see :class:`Recording`); None when the token leads nowhere."""
        target = await self.target(text, Kind.OPEN, request.host)
        if target is None:
            return None
        return await self._recording(target, request, EventKind.OPEN, {})

    async def click(self, text: str, request: Request) -> Recording | None:
        """The click to record and the URL to redirect to; None: answer 404."""
        target = await self.target(text, Kind.CLICK, request.host)
        if target is None or target.url is None:
            return None
        return await self._recording(target, request, EventKind.CLICK, {"url": target.url})

    async def unsubscribe(self, text: str, request: Request, source: str) -> bool:
        """Unsubscribe the token's recipient from its sending domain's mail."""
        target = await self.target(text, Kind.UNSUBSCRIBE, request.host)
        if target is None:
            return False
        await unsubscribe(self.services, target.delivery, request, source)
        return True

    async def opt_out(self, text: str, request: Request) -> bool:
        """Put the token's recipient on its sending domain's tracking opt-out list."""
        target = await self.target(text, Kind.OPT_OUT, request.host)
        if target is None:
            return False
        await optouts.from_delivery(self.services, target.delivery)
        return True

    async def target(self, text: str, kind: Kind, host: str = "") -> Target | None:
        """The verified token's delivery (and link), read once per cache period.

        On a sending domain's own tracking host only that domain's tokens work: another
        tenant's token presented there leads nowhere (the host carries its reputation).
        """
        token = tracking.decode(self.services, text, kind, self.services.clock.now())
        if token is None:
            return None
        key = (token.delivery_id, token.position if kind is Kind.CLICK else -1)
        found = self._targets.get(key)
        if found is None:
            found = await self.services.db.read(lambda conn: _load(conn, token, kind))
            if found is not None and found.delivery["state"] != DeliveryState.QUEUED.value:
                self._targets.put(key, found)  # settled: its facts no longer change
        if found is None or not self._host_allows(host, found.delivery):
            return None
        return Target(token, found.delivery, found.url, found.links)

    def _host_allows(self, host: str, delivery: dict[str, Any]) -> bool:
        prefix = self.services.settings.domains.tracking_label.lower() + "."
        host = host.lower().rstrip(".")
        if not host.startswith(prefix):
            return True  # the shared base URL or the listener's address
        sender = str(delivery["sender"]).rpartition("@")[2].lower()
        try:
            return host[len(prefix) :] == ascii_name(sender)
        except UnicodeError:
            return False

    # --- recording ------------------------------------------------------------------------

    async def _recording(
        self, target: Target, request: Request, kind: EventKind, extra: dict[str, Any]
    ) -> Recording:
        now = self.services.clock.now()
        hit = machines.Hit(
            kind.value,
            request.method,
            request.ip,
            request.user_agent,
            _since_delivery(target.delivery, now),
            self._burst(target) if kind is EventKind.CLICK else 1,
            target.links,
        )
        verdict = machines.classify(hit, self.rules)
        details = {
            "ip": request.ip[:MAX_FIELD],
            "user_agent": request.user_agent[:MAX_FIELD],
            **extra,
            "machine": verdict.machine,
            "proxy": verdict.proxy,
        }
        item = (self.services, target.delivery, kind, details, now, self._firsts)
        recording = Recording(self, item, target.url)
        if self._in_flight >= MAX_IN_FLIGHT:
            await recording.commit()  # the writer is behind: the answer waits for it
            return Recording(self, None, target.url)
        return recording

    def _burst(self, target: Target) -> int:
        """Distinct links of this delivery clicked within the burst window (this one too)."""
        window = self.services.settings.tracking.burst_seconds
        moment = time.monotonic()
        key = target.token.delivery_id
        # link position → when it was last clicked; a message has few links, and the
        # window drops old ones, so this stays small however often a link is clicked.
        recent = self._bursts.pop(key, {})
        recent = {p: t for p, t in recent.items() if moment - t <= window}
        recent[target.token.position] = moment
        self._bursts[key] = recent
        while len(self._bursts) > _BURSTS_KEPT:
            self._bursts.popitem(last=False)
        return len(recent)


class Recording:
    """An open or click, ready to commit: the listener answers first (a redirect must not
    wait on a disk) and commits it right after, in the same request cycle (Starlette's
    background task). At most ``MAX_IN_FLIGHT`` wait at once; past that the answer
    waits for its commit, so a slow disk slows answers instead of filling memory. A
    crash between the answer and the commit loses those hits, never more."""

    def __init__(self, tracker: Tracker, item: Item | None, url: str | None) -> None:
        self.url = url
        self._tracker = tracker
        self._item = item
        if item is not None:
            tracker._in_flight += 1

    async def commit(self) -> None:
        item, self._item = self._item, None
        if item is None:
            return
        try:
            await self._tracker.services.db.write_many(_record_many, item)
        finally:
            self._tracker._in_flight -= 1


def _load(conn: Connection, token: Token, kind: Kind) -> Target | None:
    if kind is not Kind.CLICK:
        delivery = repo.delivery(conn, token.delivery_id)
        return Target(token, delivery) if delivery is not None else None
    found = repo.clicked(conn, token.delivery_id, token.position)
    if found is None or found["url"] is None:
        return None
    url, links = str(found.pop("url")), int(found.pop("links"))
    return Target(token, found, url, links)


def _since_delivery(delivery: dict[str, Any], now: datetime) -> float | None:
    if delivery["state"] != DeliveryState.DELIVERED.value or delivery["updated_at"] is None:
        return None
    delivered: datetime = delivery["updated_at"]
    return (now - delivered).total_seconds()


_FIRST = {EventKind.OPEN: "opened_at", EventKind.CLICK: "clicked_at"}

Item = tuple[
    Services, dict[str, Any], EventKind, dict[str, Any], datetime, TtlCache[tuple[str, str], bool]
]


def _record_many(conn: Connection, items: list[Item]) -> list[None]:
    """One group commit's opens and clicks: first-of-delivery marks, then the events."""
    events = []
    for services, delivery, kind, details, now, firsts in items:
        unique = details["machine"] is None and _first(conn, delivery, _FIRST[kind], now, firsts)
        event = delivery_event(services.ids, delivery, kind, {**details, "unique": unique}, now)
        events.append(event)
    message_repo.insert_events(conn, events)
    return [None] * len(items)


def _first(
    conn: Connection,
    delivery: dict[str, Any],
    column: str,
    now: datetime,
    firsts: TtlCache[tuple[str, str], bool],
) -> bool:
    """Whether this is the delivery's first open (click) by a person."""
    key = (str(delivery["id"]), column)
    if firsts.get(key):
        return False
    first = repo.mark_first(conn, key[0], column, now)
    if not first:  # someone was first already: no need to ask again
        firsts.put(key, True)
    return first


async def unsubscribe(
    services: Services, delivery: dict[str, Any], request: Request, source: str
) -> None:
    """The unsubscribe event and its suppression, once per recipient and domain."""
    now = services.clock.now()
    details = {
        "ip": request.ip[:MAX_FIELD],
        "user_agent": request.user_agent[:MAX_FIELD],
        "machine": None,
        "source": source,
    }

    def run(conn: Connection) -> None:
        email = suppressions.normal_email(str(delivery["recipient"]))
        domain = str(delivery["sender"]).rpartition("@")[2].lower()
        stream = str(delivery["stream"])
        already = suppression_repo.find_scope(
            conn, int(delivery["account_id"]), email, stream, domain
        )
        event = delivery_event(
            services.ids,
            delivery,
            EventKind.UNSUBSCRIBE,
            {**details, "unique": already is None},
            now,
        )
        if already is not None:
            return  # unsubscribed before: nothing changes, nothing to count again
        suppressions.record_from_events(services, conn, [event], now)
        message_repo.insert_events(conn, [event])

    await services.db.write(run)


# --- mailto: unsubscribes (the inbound listener) ------------------------------------------


def unsubscribe_address(services: Services, address: str) -> Token | None:
    """The verified token of a ``u+<token>@<return-path label>.<domain>`` address."""
    addr = address.strip().strip("<>").strip()
    local, at, host = addr.rpartition("@")
    label = services.settings.domains.return_path_label.lower() + "."
    if not at or not local.lower().startswith(tracking.UNSUBSCRIBE_LOCAL):
        return None
    if not host.lower().startswith(label):
        return None
    text = local[len(tracking.UNSUBSCRIBE_LOCAL) :]
    return tracking.decode(services, text, Kind.UNSUBSCRIBE, services.clock.now())


async def unsubscribe_by_mail(services: Services, addresses: list[str], peer: str) -> int:
    """Unsubscribe the recipient named by each unsubscribe address; returns how many."""
    done = 0
    for address in addresses:
        token = unsubscribe_address(services, address)
        if token is None:
            continue
        found = await services.db.read(
            functools.partial(repo.delivery, delivery_id=token.delivery_id)
        )
        domain = address.strip().strip("<>").rpartition("@")[2].lower().rstrip(".")
        label = services.settings.domains.return_path_label.lower() + "."
        if found is None or domain[len(label) :] != ascii_name(
            str(found["sender"]).rpartition("@")[2].lower()
        ):
            continue  # a token of another domain's mail: the address must be its own
        await unsubscribe(services, found, Request("MAIL", peer, ""), "mailto")
        done += 1
    return done
