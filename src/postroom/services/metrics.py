"""Prometheus metrics: read a snapshot from the database, render it in text format.

A scrape is one short read (:func:`read_snapshot`, the aggregates of
:mod:`postroom.storage.repos.metrics`) rendered through a fresh ``CollectorRegistry``
holding one :class:`SnapshotCollector` (:func:`render`). Nothing is registered globally,
so several apps (and tests) in one process never collide, and the numbers come from the
database, so every API process reports the same totals whichever one is scraped.

Metrics:

- ``postroom_queue_depth{stream}`` (gauge): queued deliveries per stream.
- ``postroom_queue_oldest_age_seconds{stream}`` (gauge): age of the oldest queued delivery
  per stream, from its ``created_at``; 0 when the stream's queue is empty.
- ``postroom_deliveries{state,stream}`` (gauge): deliveries currently in each state.
- ``postroom_events_total{kind}`` (counter): rows of the append-only events table per kind.
- ``postroom_smtp_connections_open{site}`` (gauge): open outbound SMTP connections per
  destination site, as reported by a *connections provider* (below); no samples without one.

- ``postroom_process_info{role,instance,version}`` (gauge, 1) and
  ``postroom_process_ready{role,instance}`` (gauge, 1 or 0): which process answered, when
  the scrape names an *identity* (every ``postroom`` process does: its roles and its
  ``host:pid``); per-process samples (open connections) then carry ``role`` and
  ``instance`` too, so the scrapes of several processes add up without clashing.

Every known stream, state and event kind is always exposed (0 when none), so series do
not appear and vanish as the queue drains.

Connections provider: the outbound connection pool lives in the delivery engine, not in
the database, so its numbers come from a callable ``() -> Mapping[site, open count]``
that the engine hands over (the API reads it from ``app.state.smtp_connections``). It is
called on the event loop during the scrape and must be cheap and non-blocking; if it
raises, the scrape still answers, without connection samples.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from postroom import __version__
from postroom.domain.deliveries import DeliveryState
from postroom.domain.events import EventKind
from postroom.domain.streams import Stream
from postroom.services import Services
from postroom.storage.repos import metrics as repo

log = logging.getLogger("postroom.metrics")

ConnectionsProvider = Callable[[], Mapping[str, int]]

#: ``text/plain; version=0.0.4; charset=utf-8``: the classic text format every Prometheus
#: understands. (Recent prometheus_client calls 1.0.0 "latest"; it only differs for
#: UTF-8 metric names; ours are plain, and 0.0.4 is what the library itself answers to a
#: scraper that sends no Accept header.)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


@dataclass(frozen=True)
class Snapshot:
    """Everything one scrape reports, taken at ``now``."""

    now: datetime
    deliveries: Mapping[tuple[str, str], int]
    oldest_queued: Mapping[str, datetime]
    events: Mapping[str, int]
    connections: Mapping[str, int] = field(default_factory=dict)
    identity: Identity | None = None


@dataclass(frozen=True)
class Identity:
    """The process a scrape comes from: its roles (``all``, ``worker``…) and instance."""

    role: str
    instance: str
    ready: bool = True


async def read_snapshot(
    services: Services,
    connections: ConnectionsProvider | None = None,
    identity: Identity | None = None,
) -> Snapshot:
    """Read the aggregates (one short read) and ask the connections provider, if any."""
    rows = await services.db.read(repo.snapshot)
    return Snapshot(
        now=services.clock.now(),
        deliveries=rows.deliveries,
        oldest_queued=rows.oldest_queued,
        events=rows.events,
        connections=_open_connections(connections),
        identity=identity,
    )


def _open_connections(provider: ConnectionsProvider | None) -> dict[str, int]:
    if provider is None:
        return {}
    try:
        return dict(provider())
    except Exception:
        log.exception("the SMTP connections provider failed; reporting none")
        return {}


class SnapshotCollector:
    """A prometheus_client collector that reports one :class:`Snapshot`."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot
        streams = _known([s.value for s in Stream], {stream for stream, _ in snap.deliveries})
        states = _known([s.value for s in DeliveryState], {state for _, state in snap.deliveries})
        queued = DeliveryState.QUEUED.value

        depth = GaugeMetricFamily(
            "postroom_queue_depth", "Queued deliveries per stream.", labels=["stream"]
        )
        age = GaugeMetricFamily(
            "postroom_queue_oldest_age_seconds",
            "Age of the oldest queued delivery per stream (0 when none is queued).",
            labels=["stream"],
        )
        for stream in streams:
            depth.add_metric([stream], snap.deliveries.get((stream, queued), 0))
            oldest = snap.oldest_queued.get(stream)
            seconds = (snap.now - oldest).total_seconds() if oldest is not None else 0.0
            age.add_metric([stream], max(seconds, 0.0))
        yield depth
        yield age

        by_state = GaugeMetricFamily(
            "postroom_deliveries",
            "Deliveries currently in each state, per stream.",
            labels=["state", "stream"],
        )
        for state in states:
            for stream in streams:
                by_state.add_metric([state, stream], snap.deliveries.get((stream, state), 0))
        yield by_state

        # The events table is append-only, so its per-kind counts only grow: counters.
        events = CounterMetricFamily(
            "postroom_events", "Events recorded, per kind.", labels=["kind"]
        )
        for kind in _known([k.value for k in EventKind], set(snap.events)):
            events.add_metric([kind], snap.events.get(kind, 0))
        yield events

        who = snap.identity
        extra = [who.role, who.instance] if who is not None else []
        open_connections = GaugeMetricFamily(
            "postroom_smtp_connections_open",
            "Open outbound SMTP connections per destination site.",
            labels=["site", *(["role", "instance"] if who is not None else [])],
        )
        for site, count in sorted(snap.connections.items()):
            open_connections.add_metric([site, *extra], count)
        yield open_connections
        if who is not None:
            info = GaugeMetricFamily(
                "postroom_process_info",
                "The Postroom process that answered: its roles and instance.",
                labels=["role", "instance", "version"],
            )
            info.add_metric([who.role, who.instance, __version__], 1)
            yield info
            ready = GaugeMetricFamily(
                "postroom_process_ready",
                "1 when the process is ready (its database answers), else 0.",
                labels=["role", "instance"],
            )
            ready.add_metric([who.role, who.instance], 1 if who.ready else 0)
            yield ready


def _known(expected: list[str], seen: set[str]) -> list[str]:
    """The expected label values, then any unexpected ones found in the data."""
    return expected + sorted(seen.difference(expected))


def render(snapshot: Snapshot) -> bytes:
    """The snapshot in Prometheus text exposition format (a fresh registry per call)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)
