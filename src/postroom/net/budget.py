"""File-descriptor budget: every listener gets a share of the open-file limit.

Each connection is a file descriptor, and a process has a limit on them
(``RLIMIT_NOFILE``, often a soft 1,024 under a much higher hard limit). Once it is
reached, ``accept()`` fails on *every* listener: a thousand idle connections to the
inbound MX then make the HTTPS API unreachable. So:

* :func:`raise_open_files` lifts the soft limit to the hard one at start (what nginx's
  ``worker_rlimit_nofile`` and systemd's ``LimitNOFILE`` are for);
* :func:`plan` gives each listener its caps (``connections.*`` settings) and, when their
  sum plus ``reserved_files`` (database connections, outbound SMTP, webhooks, DNS, log
  and database files) does not fit under the limit, scales every listener's caps down in
  proportion and says what to raise. A listener at its cap then refuses new connections
  (``net/gate.py``) while the others, and the process's own files, keep their share.
"""

from __future__ import annotations

import logging
import math
import resource
from dataclasses import dataclass, replace

from postroom.config import ListenerCaps, Settings
from postroom.net.gate import Caps, ConnectionGate

log = logging.getLogger("postroom.net")

# Database pool: pool_size + max_overflow (storage/db.py) and the writer's connection.
DATABASE_FILES = 21
# Where the hard limit is "unlimited", ask for this much (macOS refuses more than
# OPEN_MAX; Linux caps at fs.nr_open).
UNLIMITED_TARGET = 1_048_576


@dataclass(frozen=True, slots=True)
class ListenerPlan:
    """One listener: its port, its name in logs, its settings key, its caps."""

    port: int
    name: str
    setting: str
    caps: Caps


def raise_open_files() -> int:
    """Raise the soft open-file limit to the hard one; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            log.warning(
                "could not raise the open-file limit from %d to %d: %s", soft, target, error
            )
            return int(soft)
        log.info("open-file limit raised from %d to %d (the hard limit)", soft, target)
        return target
    return UNLIMITED_TARGET if soft == resource.RLIM_INFINITY else int(soft)


def listeners(settings: Settings) -> list[ListenerPlan]:
    """Every listener ``postroom serve`` starts with these settings, and its caps."""
    conn, server, sub = settings.connections, settings.server, settings.submission
    plans = [
        _plan(server.port, f"transactional API ({server.host}:{server.port})", "api", conn.api),
        _plan(
            server.bulk_port,
            f"bulk API ({server.host}:{server.bulk_port})",
            "bulk_api",
            conn.bulk_api,
        ),
    ]
    # Implicit TLS starts with the SMTP certificate (configured or self-signed by serve).
    has_cert = settings.smtp_tls_files() is not None
    for _stream, port, implicit in sub.listeners():
        if implicit and not has_cert:
            continue  # implicit TLS does not start without a certificate
        plans.append(
            _plan(port, f"SMTP submission ({server.host}:{port})", "submission", conn.submission)
        )
    if settings.bounces.inbound_enabled:
        plans.append(_inbound(settings))
    track = settings.tracking
    if track.port:
        where = f"{track.host or server.host}:{track.port}"
        plans.append(_plan(track.port, f"tracking ({where})", "tracking", conn.tracking))
    return plans


def _inbound(settings: Settings) -> ListenerPlan:
    bounces = settings.bounces
    where = f"{bounces.inbound_host}:{bounces.inbound_port}"
    return _plan(
        bounces.inbound_port, f"inbound SMTP ({where})", "inbound", settings.connections.inbound
    )


def _plan(port: int, name: str, key: str, caps: ListenerCaps) -> ListenerPlan:
    return ListenerPlan(
        port, name, f"connections.{key}", Caps(caps.max_connections, caps.max_per_client)
    )


def reserved(settings: Settings) -> int:
    """Open files kept out of the listeners' share."""
    return settings.connections.reserved_files + settings.delivery.max_connections + DATABASE_FILES


def plan(settings: Settings, open_files: int | None) -> list[ListenerPlan]:
    """The listeners' caps, scaled down (with a warning) to fit under ``open_files``."""
    plans = listeners(settings)
    if open_files is None:
        return plans
    wanted = sum(p.caps.max_connections for p in plans)
    keep = reserved(settings)
    budget = open_files - keep
    if wanted <= budget:
        return plans
    factor = max(budget, len(plans)) / wanted
    fitted = [replace(p, caps=_scaled(p.caps, factor)) for p in plans]
    log.warning(
        "the open-file limit (%d) is low for the listeners' connection caps: they add up "
        "to %d, plus %d kept for the database, outbound SMTP and webhooks; each listener's "
        "caps are scaled down to fit (%s). Raise the limit to at least %d (`ulimit -n`, "
        "LimitNOFILE= in a systemd unit, --ulimit nofile= for Docker) or lower the "
        "connections.* caps.",
        open_files,
        wanted,
        keep,
        ", ".join(f"{p.name}: {p.caps.max_connections}" for p in fitted),
        wanted + keep,
    )
    return fitted


def _scaled(caps: Caps, factor: float) -> Caps:
    total = max(1, math.floor(caps.max_connections * factor))
    return Caps(total, min(caps.max_per_client, total))


def gates(plans: list[ListenerPlan], warn_interval: float) -> dict[int, ConnectionGate]:
    """One gate per listener, by port."""
    return {
        p.port: ConnectionGate(p.name, p.caps, setting=p.setting, warn_interval=warn_interval)
        for p in plans
    }


def inbound_gate(settings: Settings) -> ConnectionGate:
    """The inbound listener's gate with its configured caps (tests, embedding)."""
    [gate] = gates([_inbound(settings)], settings.connections.warning_interval).values()
    return gate


def gates_for(settings: Settings, open_files: int | None = None) -> dict[int, ConnectionGate]:
    """The gates of every listener of ``settings`` (fitted under ``open_files`` if given)."""
    return gates(plan(settings, open_files), settings.connections.warning_interval)
