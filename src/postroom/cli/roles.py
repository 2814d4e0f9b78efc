"""The four roles a Postroom process can play, and which listeners each one serves.

``postroom serve`` plays them all in one process (the one-command default); ``postroom
api``, ``postroom smtp``, ``postroom worker`` and ``postroom scheduler`` play one each, so
an installation can run several of each on several hosts against one PostgreSQL
database (docs/deploy.md):

- ``api``: the HTTP listeners (transactional, bulk, tracking), ``/healthz``, ``/readyz``
  and ``/metrics`` on the transactional port;
- ``smtp``: the SMTP submission listeners and the inbound listener for bounces;
- ``worker``: background work that drains the database: the delivery worker (and any
  further dispatcher of queued work, e.g. webhooks, belongs here too);
- ``scheduler``: periodic housekeeping; on PostgreSQL one scheduler is active at a time
  across every process and host (an advisory lock, see storage/leadership.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    API = "api"
    SMTP = "smtp"
    WORKER = "worker"
    SCHEDULER = "scheduler"


ALL_ROLES: frozenset[Role] = frozenset(Role)

# The listener flags (cli/ports.py) each role binds; roles without any have none.
LISTENER_FLAGS: dict[Role, tuple[str, ...]] = {
    Role.API: ("--port", "--bulk-port", "--tracking-port"),
    Role.SMTP: (
        "--smtp-port",
        "--smtp-bulk-port",
        "--smtps-port",
        "--smtps-bulk-port",
        "--inbound-port",
    ),
    Role.WORKER: (),
    Role.SCHEDULER: (),
}


def flags_of(roles: Iterable[Role]) -> set[str]:
    """Every listener flag the given roles bind."""
    return {flag for role in roles for flag in LISTENER_FLAGS[role]}


def label(roles: Iterable[Role]) -> str:
    """A stable name for a set of roles (``all`` for every role), for logs and metrics."""
    chosen = set(roles)
    if chosen == set(ALL_ROLES):
        return "all"
    return "+".join(role.value for role in Role if role in chosen)
