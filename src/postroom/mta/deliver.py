"""MX and relay delivery: one worker round of leased deliveries, over real SMTP.

A round goes in three steps, the database touched twice:

1. **Plan** (a read, off the writer thread): load the leased deliveries' messages and
   bodies, DKIM-sign each message once with its sender domain's active keys (in that
   worker thread: signing is CPU work and must not block the event loop), and group the
   deliveries by (message, recipient domain): one SMTP transaction carries every
   recipient of one message at one domain.
2. **Send**: per group, route the domain (MX mode: :class:`~postroom.mta.routing.Router`;
   relay mode: the configured smarthost), wait for the destination site's throttle
   (bounded), and try the hosts and their addresses in order until one answers. A
   connection failure moves on to the next address; a reply (2yz, 4yz or 5yz) from a
   host that answered is final for this attempt. Sessions are pooled by address for the
   round and closed at its end.
3. **Apply** (one write transaction): delivered → ``delivered`` + ``delivery`` event;
   5yz → ``bounced`` + ``bounce``; 4yz, network failures and temporary routing failures
   → deferred by the retry schedule + ``soft_bounce``, or ``failed`` + ``bounce`` (with
   ``expired: true``) once the retry window is over; null MX and permanent routing
   failures → ``bounced``, category ``bad_domain``. Only rows still queued are touched.

A crash between the steps loses nothing: the leases expire and another round sends
again (at-least-once, as every MTA: a message accepted by the receiver just before the
crash may be delivered twice).

The envelope sender is a VERP return path (:mod:`postroom.domain.returnpath`) naming the
group's first delivery, under the sender's domain.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from postroom.config import DeliveryMode
from postroom.domain import returnpath
from postroom.domain.deliveries import DeliveryState
from postroom.domain.events import EventKind
from postroom.domain.providers import provider_of
from postroom.domain.retry import RetrySchedule, next_attempt
from postroom.domain.throttle import SiteLimits, Throttles, is_rate_limit_reply
from postroom.events.recorder import delivery_event
from postroom.mta.classify import BounceCategory, Classification, Outcome, classify_reply
from postroom.mta.pool import PooledSession, SessionPool
from postroom.mta.routing import MxHost, NoRoute, NullMx, Route, Router
from postroom.mta.session import SendResult, SessionConfig, SessionError, TlsPolicy
from postroom.mta.signing import Signer
from postroom.queue import leases
from postroom.services import Services, suppressions
from postroom.storage.repos import messages as message_repo
from postroom.storage.tables import message_bodies, messages

log = logging.getLogger("postroom.mta")

NO_BODY = "the message body is no longer stored"
MAX_THROTTLE_WAIT = 5.0  # seconds one group may wait for its site; the rest waits a round
RELAY_SITE = "relay"


@dataclass(slots=True)
class Group:
    """One SMTP transaction: a message and its recipients at one domain."""

    message: dict[str, Any]
    raw: bytes
    domain: str
    deliveries: list[dict[str, Any]]


@dataclass(slots=True)
class RoundPlan:
    groups: list[Group] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Result:
    """One delivery's outcome for the round."""

    delivery: dict[str, Any]
    classification: Classification
    recipient_mx: str = ""
    sending_ip: str = ""
    tls: str | None = None
    provider: str = ""


def plan_round(
    services: Services, conn: Connection, leased: Sequence[dict[str, Any]], now: datetime
) -> RoundPlan:
    """Load and sign the round's messages, grouped per (message, recipient domain)."""
    query = (
        select(messages, message_bodies.c.raw)
        .join(message_bodies, message_bodies.c.message_id == messages.c.id)
        .where(messages.c.id.in_({row["message_id"] for row in leased}))
    )
    stored = {row["id"]: dict(row) for row in conn.execute(query).mappings()}
    signer = Signer(services, conn, int(now.timestamp()))
    signed: dict[str, bytes] = {}
    groups: dict[tuple[str, str], Group] = {}
    plan = RoundPlan()
    for delivery in leased:
        message = stored.get(delivery["message_id"])
        if message is None:
            plan.missing.append(delivery)
            continue
        if message["id"] not in signed:
            signed[message["id"]] = signer.sign(message, bytes(message["raw"]))
        domain = str(delivery["recipient_domain"]).lower()
        key = (message["id"], domain)
        if key not in groups:
            groups[key] = Group(message, signed[message["id"]], domain, [])
        groups[key].deliveries.append(delivery)
    plan.groups = list(groups.values())
    return plan


class MxEngine:
    """Delivers leased deliveries over SMTP (``mx`` or ``relay`` mode); one per worker."""

    def __init__(self, services: Services) -> None:
        self.services = services
        cfg = services.settings.delivery
        self.mode = cfg.mode
        if self.mode is DeliveryMode.SANDBOX:
            raise ValueError("the MX engine does not run in sandbox mode")
        self.throttles = Throttles(
            fallback=SiteLimits(
                max_connections=cfg.site_max_connections,
                messages_per_connection=cfg.site_messages_per_connection,
                messages_per_minute=cfg.site_messages_per_minute,
            )
        )
        self.rand = random.random
        self._pool: SessionPool | None = None
        tls: TlsPolicy = "opportunistic"
        self.credentials: tuple[str, str] | None = None
        if self.mode is DeliveryMode.RELAY:
            if not cfg.relay_host:
                raise ValueError("relay mode needs delivery.relay_host")
            if cfg.relay_tls == "implicit":
                raise ValueError("relay_tls 'implicit' (port 465) is not supported yet")
            if cfg.relay_tls not in ("starttls", "none"):
                raise ValueError(f"unknown relay_tls {cfg.relay_tls!r}")
            tls = "required" if cfg.relay_tls == "starttls" else "none"
            if cfg.relay_username:
                self.credentials = (cfg.relay_username, cfg.relay_password or "")
            self.router: Router | None = None
        else:
            self.router = Router(services.get_resolver(), port=cfg.port)
        self.session_config = SessionConfig(
            ehlo_name=cfg.ehlo_name,
            port=cfg.relay_port if self.mode is DeliveryMode.RELAY else cfg.port,
            connect_timeout=cfg.connect_timeout,
            command_timeout=cfg.command_timeout,
            data_timeout=max(cfg.command_timeout, 600.0),
            tls=tls,
        )
        self.schedule = RetrySchedule(
            first_delay=cfg.retry_first_delay,
            factor=cfg.retry_factor,
            max_delay=max(cfg.retry_max_delay, cfg.retry_first_delay),
            window=cfg.retry_window,
        )

    def open_connections(self) -> dict[str, int]:
        """Open outbound connections per site right now (for /metrics)."""
        pool = self._pool
        return pool.open_by_site() if pool is not None else {}

    async def run_round(self, leased: list[dict[str, Any]], now: datetime) -> int:
        """Deliver one leased batch; returns how many deliveries got an outcome."""
        services = self.services
        plan = await services.db.read(lambda conn: plan_round(services, conn, leased, now))
        pool = SessionPool(self.session_config, credentials=self.credentials)
        self._pool = pool
        results: list[Result] = []
        try:
            for group in plan.groups:
                results += await self._deliver(group, pool)
        finally:
            self._pool = None
            await pool.close_all()
        done = services.clock.now()
        return await services.db.write(
            lambda conn: apply_round(
                services, conn, results, plan.missing, self.schedule, done, self.rand
            )
        )

    # --- one group

    async def _route(self, domain: str) -> Route:
        if self.router is None:
            host = self.services.settings.delivery.relay_host or ""
            return Route(domain, (MxHost(host, 0, (host,)),), RELAY_SITE, implicit=True)
        return await self.router.route(domain)

    async def _deliver(self, group: Group, pool: SessionPool) -> list[Result]:
        results = await self._attempt(group, pool)
        provider = self._provider(group.domain)
        for r in results:
            r.provider = provider
        return results

    def _provider(self, domain: str) -> str:
        """The mailbox provider, from the MX set the router has cached for ``domain``."""
        hosts = self.router.cached_hosts(domain) if self.router is not None else ()
        return provider_of(domain, hosts)

    async def _attempt(self, group: Group, pool: SessionPool) -> list[Result]:
        try:
            route = await self._route(group.domain)
        except NullMx as exc:
            return self._all(group, classify_reply(556, f"5.1.10 {exc}"))
        except NoRoute as exc:
            if exc.permanent:
                unroutable = Classification(
                    Outcome.HARD_BOUNCE, BounceCategory.BAD_DOMAIN, 550, "5.1.2", str(exc)
                )
            else:
                unroutable = Classification(
                    Outcome.SOFT_BOUNCE, BounceCategory.DNS, 451, "4.4.3", str(exc)
                )
            return self._all(group, unroutable)
        site = self.throttles.for_site(route.site)
        pool.messages_per_connection = site.messages_per_connection
        pool.site = route.site
        wait = site.try_take(time.monotonic())
        if wait > 0:
            await asyncio.sleep(min(wait, MAX_THROTTLE_WAIT))
        recipients = [str(d["recipient"]) for d in group.deliveries]
        mail_from = self._return_path(group)
        failure: Classification | None = None
        failed_host = ""
        for host in route.hosts:
            for address in host.addresses:
                try:
                    session, result = await self._send(
                        pool, host, address, mail_from, recipients, group.raw
                    )
                except SessionError as exc:
                    failure, failed_host = exc.classification, host.name
                    log.info("delivery to %s (%s) failed: %s", host.name, address, failure)
                    continue
                except ValueError as exc:  # an unsafe address or message: never retried
                    return self._all(group, classify_reply(554, f"5.6.0 {exc}"), host.name)
                return self._results(group, result, session, site)
        assert failure is not None  # a route always has at least one address
        if is_rate_limit_reply(failure.code, failure.text):
            site.on_rate_limited(time.monotonic())
        return self._all(group, failure, failed_host)

    async def _send(
        self,
        pool: SessionPool,
        host: MxHost,
        address: str,
        mail_from: str,
        recipients: list[str],
        raw: bytes,
    ) -> tuple[PooledSession, SendResult]:
        session = pool.cached(address)
        if session is not None:
            try:
                session.sent += 1
                return session, await session.send(mail_from, recipients, raw)
            except SessionError:
                await pool.discard(address)  # a stale reused connection: one fresh try
        session = await pool.open(host.name, address)
        session.sent += 1
        return session, await session.send(mail_from, recipients, raw)

    def _return_path(self, group: Group) -> str:
        sender = str(group.message["sender"])
        try:
            return returnpath.encode(
                str(group.deliveries[0]["id"]),
                sender.rpartition("@")[2],
                key=self.services.get_sealer().derive("return-path"),
                label=self.services.settings.domains.return_path_label,
            )
        except ValueError:
            return sender

    def _results(
        self, group: Group, result: SendResult, session: PooledSession, site: Any
    ) -> list[Result]:
        now = time.monotonic()
        out: list[Result] = []
        for delivery in group.deliveries:
            found = result.recipients.get(str(delivery["recipient"]))
            if found is None:  # a duplicate address folded into one RCPT: same fate
                found = classify_reply(451, "4.3.0 no reply for this recipient")
            if found.outcome is Outcome.DELIVERED:
                site.on_success(now)
            elif is_rate_limit_reply(found.code, found.text):
                site.on_rate_limited(now)
            out.append(
                Result(
                    delivery,
                    found,
                    result.remote_host,
                    session.local_address or "",
                    result.tls_version,
                )
            )
        return out

    @staticmethod
    def _all(group: Group, failure: Classification, mx: str = "") -> list[Result]:
        return [Result(d, failure, recipient_mx=mx) for d in group.deliveries]


# --- apply


def apply_round(
    services: Services,
    conn: Connection,
    results: Sequence[Result],
    missing: Sequence[dict[str, Any]],
    schedule: RetrySchedule,
    now: datetime,
    rand: Any = random.random,
) -> int:
    """Record the round's outcomes in one transaction; returns how many were applied."""
    queued = leases.still_queued(
        conn, [r.delivery["id"] for r in results] + [d["id"] for d in missing]
    )
    events: list[dict[str, Any]] = []
    final: dict[tuple[DeliveryState, str], list[str]] = {}
    applied = 0
    for r in results:
        d = r.delivery
        if d["id"] not in queued:
            continue
        applied += 1
        c = r.classification
        response = str(c)
        if c.outcome is Outcome.DELIVERED:
            final.setdefault((DeliveryState.DELIVERED, response), []).append(d["id"])
            details: dict[str, Any] = {
                "sending_ip": r.sending_ip,
                "recipient_mx": r.recipient_mx,
                "email_service_provider": r.provider,
                "response": response,
                "tls": r.tls,
            }
            events.append(delivery_event(services.ids, d, EventKind.DELIVERY, details, now))
            continue
        details = _bounce_details(r)
        if c.outcome is Outcome.HARD_BOUNCE:
            final.setdefault((DeliveryState.BOUNCED, response), []).append(d["id"])
            events.append(delivery_event(services.ids, d, EventKind.BOUNCE, details, now))
            continue
        until = next_attempt(
            schedule,
            attempts=int(d["attempts"]) + 1,
            first_attempt_at=d["created_at"],
            now=now,
            rand=rand,
        )
        if until is None:
            final.setdefault((DeliveryState.FAILED, response), []).append(d["id"])
            events.append(
                delivery_event(services.ids, d, EventKind.BOUNCE, {**details, "expired": True}, now)
            )
        else:
            leases.defer(conn, d["id"], until, now, response)
            events.append(
                delivery_event(
                    services.ids,
                    d,
                    EventKind.SOFT_BOUNCE,
                    {**details, "next_attempt_at": until.isoformat()},
                    now,
                )
            )
    for (state, response), ids in final.items():
        leases.complete(conn, ids, state, now, response)
    gone = [d for d in missing if d["id"] in queued]
    leases.complete(conn, [d["id"] for d in gone], DeliveryState.REJECTED, now, NO_BODY)
    events += [
        delivery_event(services.ids, d, EventKind.REJECT, {"reject_reason": NO_BODY}, now)
        for d in gone
    ]
    suppressions.record_from_events(services, conn, events, now)
    message_repo.insert_events(conn, events)
    return applied + len(gone)


def _bounce_details(r: Result) -> dict[str, Any]:
    c = r.classification
    category = (c.category or BounceCategory.OTHER).value
    return {
        "sending_ip": r.sending_ip,
        "recipient_mx": r.recipient_mx,
        "email_service_provider": r.provider,
        "email_service_provider_status": c.enhanced or str(c.code),
        "email_service_provider_response": str(c),
        "bounce_category": category,
        "response": str(c),
        "response_code": c.code,
        "enhanced_status": c.enhanced,
    }
