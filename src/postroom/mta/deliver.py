"""MX and relay delivery: one worker round of leased deliveries, over real SMTP.

A round goes in three steps, the database touched twice:

1. **Plan** (a read, off the writer thread): load the leased deliveries' messages and
   bodies, DKIM-sign each message once with its sender domain's active keys (in that
   worker thread: signing is CPU work and must not block the event loop), and group the
   deliveries by (message, recipient domain): one SMTP transaction carries every
   recipient of one message at one domain. A message that gets a copy per recipient
   (tracking, unsubscribe: :mod:`postroom.mta.personalize`) is signed per copy and sent
   one recipient per transaction; the links its copies track are stored (a write)
   before any is sent.
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
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from postroom.config import DeliveryMode, DeliverySettings, IpPoolSettings
from postroom.domain import returnpath
from postroom.domain.deliveries import DeliveryState
from postroom.domain.events import EventKind
from postroom.domain.ippools import Allocator, IpPool, SourceIp, pool_for
from postroom.domain.providers import provider_of
from postroom.domain.retry import RetrySchedule, next_attempt
from postroom.domain.throttle import (
    SiteLimits,
    SiteThrottle,
    Throttles,
    is_rate_limit_reply,
    site_key,
)
from postroom.events.recorder import delivery_event
from postroom.mta import personalize
from postroom.mta.classify import BounceCategory, Classification, Outcome, classify_reply
from postroom.mta.lanes import SiteRunner
from postroom.mta.mtasts import MtaStsResolver, Policy, plan_mx
from postroom.mta.pool import SessionPool
from postroom.mta.routing import MxHost, NoRoute, NullMx, Route, Router
from postroom.mta.session import SendResult, Session, SessionConfig, SessionError, TlsPolicy
from postroom.mta.signing import Signer
from postroom.mta.sitebudget import SharedSites
from postroom.queue import leases
from postroom.services import Services, suppressions
from postroom.services.egress import tls_context
from postroom.storage.repos import accounts as account_repo
from postroom.storage.repos import ipvolume
from postroom.storage.repos import messages as message_repo
from postroom.storage.repos import tracking as tracking_repo
from postroom.storage.tables import message_bodies, messages

log = logging.getLogger("postroom.mta")

NO_BODY = "the message body is no longer stored"
RELAY_SITE = "relay"
# DNS lookups in flight at once while routing a round: a round may name hundreds of
# domains, and a burst of that many queries makes small resolvers drop some (a dropped
# query is a timeout, i.e. a deferred delivery).
ROUTE_CONCURRENCY = 8


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
    # tracked_links rows to store before anything is sent (click tracking)
    links: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    volume: dict[str, int] = field(default_factory=dict)  # today's recipients per source IP
    account_pools: dict[int, str] = field(default_factory=dict)


@dataclass(slots=True)
class Result:
    """One delivery's outcome for the round."""

    delivery: dict[str, Any]
    classification: Classification
    recipient_mx: str = ""
    sending_ip: str = ""
    tls: str | None = None
    provider: str = ""
    mta_sts: str | None = None  # an MTA-STS policy failure seen on the way (testing mode)


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
    copies = personalize.prepare(services, conn, stored, leased)
    plan.links = copies.link_rows(now)
    for delivery in leased:
        message = stored.get(delivery["message_id"])
        if message is None:
            plan.missing.append(delivery)
            continue
        own = copies.copy(services, delivery, now)
        if own is not None:  # the recipient's own copy: a transaction of its own
            domain = str(delivery["recipient_domain"]).lower()
            plan.groups.append(Group(message, signer.sign(message, own), domain, [delivery]))
            continue
        if message["id"] not in signed:
            signed[message["id"]] = signer.sign(message, bytes(message["raw"]))
        domain = str(delivery["recipient_domain"]).lower()
        key = (message["id"], domain)
        if key not in groups:
            groups[key] = Group(message, signed[message["id"]], domain, [])
        groups[key].deliveries.append(delivery)
    plan.groups += groups.values()
    if services.settings.delivery.ip_pools:
        plan.volume = ipvolume.sent_on(conn, now.astimezone(UTC).date())
        plan.account_pools = account_repo.ip_pools(conn, (int(d["account_id"]) for d in leased))
    return plan


@dataclass(slots=True)
class Job:
    """A group with its route and the local address it leaves from."""

    group: Group
    route: Route
    source: str | None
    policy: Policy | None = None  # the domain's MTA-STS policy, if it publishes one


class MxEngine:
    """Delivers leased deliveries over SMTP (``mx`` or ``relay`` mode); one per worker."""

    def __init__(self, services: Services, mode: DeliveryMode | None = None) -> None:
        self.services = services
        cfg = services.settings.delivery
        self.mode = mode or cfg.mode
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
        self.pools = ip_pools(cfg.ip_pools)
        self._runners: list[SiteRunner[Job, Result]] = []
        self._connections = asyncio.Semaphore(max(1, cfg.max_connections))
        self._freed: dict[str, asyncio.Condition] = {}  # per site key, across rounds
        self.router = (
            None
            if self.mode is DeliveryMode.RELAY
            else Router(services.get_resolver(), port=cfg.port)
        )
        self.session_config = _session_config(cfg, relay=self.mode is DeliveryMode.RELAY)
        self.sts: MtaStsResolver | None = None
        self.verified_config = self.session_config
        if self.router is not None:
            self.sts = MtaStsResolver.from_settings(services.settings, services.get_resolver())
            self.verified_config = replace(
                self.session_config,
                tls="required",
                tls_context=tls_context(services.settings.egress.ca_bundle),
            )
        self.schedules = {
            stream: _schedule(cfg, window) for stream, window in cfg.retry_window_by_stream.items()
        }
        self.default_schedule = _schedule(cfg, cfg.retry_window)
        # Several workers share each site's limits through Redis (mta/sitebudget.py).
        redis_url = services.settings.scale.redis_url
        self.shared = (
            SharedSites.from_url(
                redis_url,
                services.settings.scale.redis_prefix,
                slot_ttl=services.settings.scale.site_slot_seconds,
            )
            if redis_url
            else None
        )

    def schedule_for(self, stream: str) -> RetrySchedule:
        return self.schedules.get(stream, self.default_schedule)

    def open_connections(self) -> dict[str, int]:
        """Open outbound connections per site right now (for /metrics)."""
        counts: dict[str, int] = {}
        for runner in list(self._runners):
            counts[runner.site] = counts.get(runner.site, 0) + runner.open_connections
        return counts

    async def run_round(self, leased: list[dict[str, Any]], now: datetime) -> int:
        """Deliver one leased batch; returns how many deliveries got an outcome."""
        services = self.services
        plan = await services.db.read(lambda conn: plan_round(services, conn, leased, now))
        if plan.links:  # a click must find its link as soon as the copy can arrive
            await services.db.write(lambda conn: tracking_repo.save_links(conn, plan.links))
        results, jobs, postponed = await self._assign(plan, now)
        deadline = time.monotonic() + services.settings.delivery.round_seconds
        runners = [
            SiteRunner[Job, Result](
                site,
                throttle,
                self._connections,
                self._freed.setdefault(site, asyncio.Condition()),
                deadline,
                self._new_pool,
                self._deliver,
                shared=self.shared,
            )
            for site, (throttle, _) in jobs.items()
        ]
        self._runners += runners
        try:
            await asyncio.gather(*(r.run(jobs[r.site][1]) for r in runners))
        finally:
            self._runners = [r for r in self._runners if r not in runners]
        done = services.clock.now()
        for runner in runners:
            results += runner.results
            for job, wait in runner.postponed:
                until = done + timedelta(seconds=wait)
                postponed += [(d, until) for d in job.group.deliveries]
        return await services.db.write(
            lambda conn: apply_round(
                services,
                conn,
                results,
                plan.missing,
                self.schedule_for,
                done,
                self.rand,
                postponed=postponed,
            )
        )

    async def _assign(
        self, plan: RoundPlan, now: datetime
    ) -> tuple[
        list[Result],
        dict[str, tuple[SiteThrottle, list[Job]]],
        list[tuple[dict[str, Any], datetime]],
    ]:
        """Route every group, pick its source address and sort it into its site's jobs."""
        domains = sorted({g.domain for g in plan.groups})
        gate = asyncio.Semaphore(ROUTE_CONCURRENCY)

        async def gated(domain: str) -> tuple[Route | Classification, Policy | None]:
            async with gate:
                route = await self._route(domain)
                if isinstance(route, Classification) or self.sts is None:
                    return route, None
                return route, await self.sts.policy(domain)

        routed = dict(zip(domains, await asyncio.gather(*map(gated, domains)), strict=True))
        allocator = Allocator(
            now.astimezone(UTC).date(),
            self.services.settings.delivery.warmup_caps,
            dict(plan.volume),
            self.rand,
        )
        results: list[Result] = []
        postponed: list[tuple[dict[str, Any], datetime]] = []
        jobs: dict[str, tuple[SiteThrottle, list[Job]]] = {}
        for group in plan.groups:
            route, policy = routed[group.domain]
            if isinstance(route, Classification):
                results += self._all(group, route)
                continue
            pool = self._pool_of(group, plan.account_pools)
            source = allocator.take(pool, len(group.deliveries)) if pool is not None else None
            if pool is not None and source is None:  # every address at today's cap
                tomorrow = datetime.combine(allocator.today + timedelta(days=1), dt_time(), UTC)
                postponed += [(d, tomorrow) for d in group.deliveries]
                continue
            throttle = self.throttles.for_site(route.site)
            key = site_key(route.site, self.throttles.table)
            jobs.setdefault(key, (throttle, []))[1].append(Job(group, route, source, policy))
        return results, jobs, postponed

    def _pool_of(self, group: Group, account_pools: dict[int, str]) -> IpPool | None:
        first = group.deliveries[0]
        return pool_for(
            self.pools,
            account_pool=account_pools.get(int(first["account_id"])),
            stream_pools=self.services.settings.delivery.stream_pools,
            stream=str(first["stream"]),
        )

    def _new_pool(self) -> SessionPool:
        return SessionPool(self.session_config)

    # --- one group

    async def _route(self, domain: str) -> Route | Classification:
        """The route, or the classification every delivery to ``domain`` gets."""
        if self.router is None:
            host = self.services.settings.delivery.relay_host or ""
            return Route(domain, (MxHost(host, 0, (host,)),), RELAY_SITE, implicit=True)
        try:
            return await self.router.route(domain)
        except NullMx as exc:
            return classify_reply(556, f"5.1.10 {exc}")
        except NoRoute as exc:
            if exc.permanent:
                return Classification(
                    Outcome.HARD_BOUNCE, BounceCategory.BAD_DOMAIN, 550, "5.1.2", str(exc)
                )
            return Classification(Outcome.SOFT_BOUNCE, BounceCategory.DNS, 451, "4.4.3", str(exc))

    async def _deliver(self, job: Job, pool: SessionPool) -> list[Result]:
        results = await self._attempt(job, pool)
        provider = self._provider(job.group.domain)
        for r in results:
            r.provider = provider
        return results

    def _provider(self, domain: str) -> str:
        """The mailbox provider, from the MX set the router has cached for ``domain``."""
        hosts = self.router.cached_hosts(domain) if self.router is not None else ()
        return provider_of(domain, hosts)

    async def _attempt(self, job: Job, pool: SessionPool) -> list[Result]:
        group, route = job.group, job.route
        site = self.throttles.for_site(route.site)
        pool.messages_per_connection = site.messages_per_connection
        recipients = [str(d["recipient"]) for d in group.deliveries]
        mail_from = self._return_path(group)
        failure: Classification | None = None
        failed_host = ""
        reports: list[str] = []
        for host in route.hosts:
            plan = plan_mx(job.policy, host.name)
            if plan.report:
                reports.append(plan.report)
            if not plan.use:
                continue
            config = self.verified_config if plan.tls == "required" else self.session_config
            for address in host.addresses:
                try:
                    session, result = await self._send(
                        pool, host, address, job.source, config, mail_from, recipients, group.raw
                    )
                except SessionError as exc:
                    failure, failed_host = exc.classification, host.name
                    log.info("delivery to %s (%s) failed: %s", host.name, address, failure)
                    continue
                except ValueError as exc:  # an unsafe address or message: never retried
                    return self._all(group, classify_reply(554, f"5.6.0 {exc}"), host.name)
                return self._noted(self._results(group, result, session, site), reports)
        if failure is None:  # MTA-STS enforce: no MX host is one the policy names
            failure = Classification(
                Outcome.SOFT_BOUNCE,
                BounceCategory.POLICY,
                451,
                "4.7.5",
                f"MTA-STS policy of {group.domain} names none of its MX hosts",
            )
        if is_rate_limit_reply(failure.code, failure.text):
            site.on_rate_limited(time.monotonic())
        return self._noted(self._all(group, failure, failed_host), reports)

    @staticmethod
    def _noted(results: list[Result], reports: list[str]) -> list[Result]:
        if reports:
            for r in results:
                r.mta_sts = "; ".join(reports)
        return results

    async def _send(
        self,
        pool: SessionPool,
        host: MxHost,
        address: str,
        source: str | None,
        config: SessionConfig,
        mail_from: str,
        recipients: list[str],
        raw: bytes,
    ) -> tuple[Session, SendResult]:
        session = pool.cached(address, source, config)
        if session is not None:
            try:
                session.sent += 1
                return session, await session.send(mail_from, recipients, raw)
            except SessionError:
                # A stale reused connection: one fresh try.
                await pool.discard(address, source, config)
        session = await pool.open(host.name, address, source, config)
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
        self, group: Group, result: SendResult, session: Session, site: SiteThrottle
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


def ip_pools(configured: dict[str, IpPoolSettings]) -> dict[str, IpPool]:
    """The configured pools as :class:`IpPool` values (validated once, at start)."""
    return {
        name: IpPool(
            name,
            tuple(SourceIp(a.address, a.weight, a.warmup_start) for a in pool.addresses),
        )
        for name, pool in configured.items()
    }


def _schedule(cfg: DeliverySettings, window: float) -> RetrySchedule:
    return RetrySchedule(
        first_delay=cfg.retry_first_delay,
        factor=cfg.retry_factor,
        max_delay=max(cfg.retry_max_delay, cfg.retry_first_delay),
        window=window,
    )


def _session_config(cfg: DeliverySettings, *, relay: bool) -> SessionConfig:
    config = SessionConfig(
        ehlo_name=cfg.ehlo_name,
        port=cfg.port,
        connect_timeout=cfg.connect_timeout,
        command_timeout=cfg.command_timeout,
        data_timeout=max(cfg.command_timeout, 600.0),
    )
    if not relay:
        return config
    if not cfg.relay_host:
        raise ValueError("relay mode needs delivery.relay_host")
    policies: dict[str, TlsPolicy] = {
        "starttls": "required",
        "implicit": "required",
        "none": "none",
    }
    if cfg.relay_tls not in policies:
        raise ValueError(f"unknown relay_tls {cfg.relay_tls!r} (starttls, implicit or none)")
    credentials = (cfg.relay_username, cfg.relay_password or "") if cfg.relay_username else None
    return replace(
        config,
        port=cfg.relay_port,
        tls=policies[cfg.relay_tls],
        tls_context=_relay_context(cfg),
        implicit_tls=cfg.relay_tls == "implicit",
        credentials=credentials,
    )


def _relay_context(cfg: DeliverySettings) -> ssl.SSLContext | None:
    """A verifying context; with relay_ca_file, trusting that CA (a private smarthost)."""
    if cfg.relay_tls == "none":
        return None
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cfg.relay_ca_file)


# --- apply


def apply_round(
    services: Services,
    conn: Connection,
    results: Sequence[Result],
    missing: Sequence[dict[str, Any]],
    schedule_for: Callable[[str], RetrySchedule],
    now: datetime,
    rand: Any = random.random,
    *,
    postponed: Sequence[tuple[dict[str, Any], datetime]] = (),
) -> int:
    """Record the round's outcomes in one transaction; returns how many were applied.

    ``postponed`` deliveries were not attempted (their site had no room, or their pool's
    addresses reached today's warm-up cap): they go back to the queue, due at the given
    time, without an attempt or an event.
    """
    queued = leases.still_queued(
        conn, [r.delivery["id"] for r in results] + [d["id"] for d in missing]
    )
    for delivery, due in postponed:
        leases.postpone(conn, delivery["id"], due, now)
    volume: dict[str, int] = {}
    for r in results:
        if r.sending_ip and r.delivery["id"] in queued:
            volume[r.sending_ip] = volume.get(r.sending_ip, 0) + 1
    if services.settings.delivery.ip_pools:
        ipvolume.add(conn, now.astimezone(UTC).date(), volume)
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
            if r.mta_sts:
                details["mta_sts"] = r.mta_sts
            events.append(delivery_event(services.ids, d, EventKind.DELIVERY, details, now))
            continue
        details = _bounce_details(r)
        if c.outcome is Outcome.HARD_BOUNCE:
            final.setdefault((DeliveryState.BOUNCED, response), []).append(d["id"])
            events.append(delivery_event(services.ids, d, EventKind.BOUNCE, details, now))
            continue
        until = next_attempt(
            schedule_for(str(d["stream"])),
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
        **({"mta_sts": r.mta_sts} if r.mta_sts else {}),
    }
