"""DNS blocklist reports for captured sandbox messages (``blacklists_report_info``).

What is checked: the registrable domain of the message's From address on the domain
lists (``<domain>.<zone>``), and the address of the client that submitted the message on
the IP lists (``<reversed octets>.<zone>``, IPv6 by reversed nibbles), each list once,
concurrently, through the installation's resolver (``dns`` settings), within
``sandbox.blacklist_timeout_seconds``. Loopback, private and other non-global addresses
are never looked up: the report says why in ``ip_not_checked``.

When: never at capture, which must not wait on DNS. The first read of a message without
a report answers ``pending`` and starts the check in this process's background (a
bounded number at once; a read after that starts the rest); the result is stored on
the message and shown from then on. An ``error`` result is checked again by a read once
it is ``sandbox.blacklist_retry_seconds`` old.

Verdicts, by the lists' published return codes: no such name (NXDOMAIN) or no A record
is "not listed"; an A record in 127.0.0.0/8 is "listed", except 127.0.0.1 and
127.255.255.0/24, which URIBL, SURBL and Spamhaus answer when they refuse a query (one
from a public resolver, say). That, an answer outside 127/8 (a resolver that rewrites
missing names), a timeout or a DNS failure is an error for that list, never a verdict.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Hashable, Iterable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from postroom.config import SandboxSettings
from postroom.domain.dmarc import organizational_domain
from postroom.services import Services
from postroom.services.dns import DnsUnavailable, Resolver
from postroom.services.domains import ascii_name
from postroom.storage.repos import sandbox as repo

log = logging.getLogger("postroom.sandbox")

# Checks one process runs at once: a listing of 30 unchecked messages must not send
# hundreds of queries in one burst.
MAX_IN_FLIGHT = 8
_KEY = "blacklists"
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_REFUSED = ipaddress.ip_network("127.255.255.0/24")
_REFUSED_ONE = ipaddress.ip_address("127.0.0.1")


# --- what is looked up ----------------------------------------------------------------


def sender_domain(from_email: str) -> str | None:
    """The registrable domain of ``from_email`` (A-labels, lower case), or None."""
    _, at, domain = from_email.rpartition("@")
    domain = domain.strip().rstrip(".").lower()
    if not at or not domain:
        return None
    try:
        name = ascii_name(domain)
    except UnicodeError:
        return None
    labels = name.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return None  # an address literal ([192.0.2.1]) or a bare host name
    return organizational_domain(name)


def ip_name(client_ip: str | None) -> tuple[str | None, str | None]:
    """``(reversed name, None)`` for a public address, else ``(None, why it is skipped)``."""
    if not client_ip:
        return None, "no client address was recorded for this message"
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return None, f"the client address {client_ip!r} is not an IP address"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None, f"{address} is a loopback address: not looked up"
    if address.is_private:
        return None, f"{address} is a private address: not looked up"
    if not address.is_global:
        return None, f"{address} is not a public address: not looked up"
    # "4.3.2.1.in-addr.arpa" → "4.3.2.1" (and the nibbles of ip6.arpa alike).
    return address.reverse_pointer.rsplit(".", 2)[0], None


def verdict(answers: Iterable[str]) -> tuple[bool, str | None]:
    """``(listed, error)`` from a list's address answers (AAAA answers say nothing)."""
    listed = False
    for text in answers:
        address = ipaddress.ip_address(text)
        if not isinstance(address, ipaddress.IPv4Address):
            continue
        if address not in _LOOPBACK:
            return False, f"answer {address} is outside 127.0.0.0/8 (a rewriting resolver?)"
        if address == _REFUSED_ONE or address in _REFUSED:
            return False, f"the list refused the query (answer {address})"
        listed = True
    return listed, None


# --- the check ------------------------------------------------------------------------


async def _entry(
    resolver: Resolver, zone: str, url: str, name: str, timeout: float
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": zone, "url": url, "in_black_list": False}
    try:
        answers = await asyncio.wait_for(resolver.a(f"{name}.{zone}"), timeout)
    except TimeoutError:
        entry["error"] = f"no answer within {timeout:g} s"
        return entry
    except DnsUnavailable as exc:
        entry["error"] = f"no answer: {exc}"
        return entry
    except ValueError:
        entry["error"] = "not a valid DNS name"
        return entry
    entry["in_black_list"], error = verdict(answers)
    if error is not None:
        entry["error"] = error
    return entry


async def check(
    settings: SandboxSettings, resolver: Resolver, from_email: str, client_ip: str | None
) -> dict[str, Any]:
    """The report of one message: ``result`` (``success`` or ``error``), ``domain``,
    ``ip``, one ``report`` entry per list looked up, and why anything was not."""
    domain = sender_domain(from_email)
    name, ip_skipped = ip_name(client_ip)
    jobs: list[tuple[str, str, str]] = []
    if domain is not None:
        jobs += [(zone, url, domain) for zone, url in settings.blacklist_domain_lists.items()]
    if name is not None:
        jobs += [(zone, url, name) for zone, url in settings.blacklist_ip_lists.items()]
    timeout = settings.blacklist_timeout_seconds
    entries = await asyncio.gather(*(_entry(resolver, *job, timeout) for job in jobs))
    report: dict[str, Any] = {
        "result": "error" if any("error" in e for e in entries) else "success",
        "domain": domain or "",
        "ip": client_ip or "",
        "report": list(entries),
    }
    if domain is None:
        report["domain_not_checked"] = "the From address has no domain name to look up"
    if ip_skipped is not None:
        report["ip_not_checked"] = ip_skipped
    return report


# --- lazily, in the background --------------------------------------------------------


def info(settings: SandboxSettings, row: Mapping[str, Any]) -> dict[str, Any] | bool:
    """What a message's ``blacklists_report_info`` shows: the stored report, ``pending``
    until there is one, or ``false`` when checks are off (the SDKs accept a boolean)."""
    if not settings.blacklist_checks:
        return False
    stored = row.get("blacklists_report")
    if isinstance(stored, dict):
        return stored
    # Every key the SDKs' model requires, so a pending report parses too.
    domain = sender_domain(str(row["from_email"]))
    return {"result": "pending", "domain": domain or "", "ip": row["client_ip"] or "", "report": []}


def _due(row: Mapping[str, Any], now: datetime, retry: float) -> bool:
    stored = row.get("blacklists_report")
    if not isinstance(stored, dict):
        return True
    checked = row.get("blacklists_checked_at")
    return (
        stored.get("result") == "error"
        and checked is not None
        and checked <= now - timedelta(seconds=retry)
    )


def start(services: Services, rows: Iterable[Mapping[str, Any]]) -> None:
    """Start the checks ``rows`` (captured messages) need, in this process's background."""
    settings = services.settings.sandbox
    if not settings.blacklist_checks:
        return
    now = services.clock.now()
    running = services.background
    for row in rows:
        key = (_KEY, int(row["id"]))
        if key in running or not _due(row, now, settings.blacklist_retry_seconds):
            continue
        if sum(1 for k in running if isinstance(k, tuple) and k[0] == _KEY) >= MAX_IN_FLIGHT:
            return  # the next read starts the rest
        wanted = (int(row["id"]), str(row["from_email"]), row["client_ip"])
        task = asyncio.get_running_loop().create_task(_check_and_store(services, *wanted))
        running[key] = task
        task.add_done_callback(partial(_finished, running, key))


def _finished(running: dict[Hashable, Any], key: Hashable, _task: asyncio.Task[None]) -> None:
    running.pop(key, None)


async def _check_and_store(
    services: Services, message_id: int, from_email: str, client_ip: str | None
) -> None:
    try:
        report = await check(
            services.settings.sandbox, services.get_resolver(), from_email, client_ip
        )
        now = services.clock.now()
        await services.db.write(
            lambda conn: repo.store_blacklists_report(conn, message_id, report, now)
        )
    except Exception:
        # A background job has no caller to answer: log it; the message stays pending and
        # the next read tries again.
        log.exception("blacklist check of sandbox message %s failed", message_id)
