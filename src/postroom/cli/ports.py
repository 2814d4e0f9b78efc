"""Bind every listener of ``postroom serve`` before anything starts, or report every clash.

A port clash used to abort at the first listener, so a newcomer fixed one flag per
attempt. Here each wanted address is tried, and all the failures (in use, not allowed,
or one port named by two flags) come back together, each with the flag that moves it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from postroom.cli.runner import PortInUse, bind
from postroom.config import Settings


@dataclass(frozen=True, slots=True)
class Wanted:
    """One listener ``serve`` will start: where, and the flag that changes its port."""

    host: str
    port: int
    flag: str


class PortsUnavailable(RuntimeError):
    """Some listeners cannot be bound; the message names each with its flag."""


def wanted(settings: Settings, smtp_tls: bool) -> list[Wanted]:
    """The listeners of ``serve`` (implicit-TLS SMTP only when a certificate is there)."""
    server, sub, inbound = settings.server, settings.submission, settings.bounces
    items = [Wanted(server.host, server.port, "--port")]
    items.append(Wanted(server.host, server.bulk_port, "--bulk-port"))
    smtp = [
        (sub.port, "--smtp-port", False),
        (sub.bulk_port, "--smtp-bulk-port", False),
        (sub.tls_port, "--smtps-port", True),
        (sub.bulk_tls_port, "--smtps-bulk-port", True),
    ]
    items += [
        Wanted(server.host, p, flag)
        for p, flag, implicit in smtp
        if p and (smtp_tls or not implicit)
    ]
    if inbound.inbound_enabled:
        items.append(Wanted(inbound.inbound_host, inbound.inbound_port, "--inbound-port"))
    track = settings.tracking
    if track.port:
        items.append(Wanted(track.host or server.host, track.port, "--tracking-port"))
    return items


def bind_all(items: list[Wanted]) -> dict[int, socket.socket]:
    """Bind every item, or close what was bound and raise one error naming every clash."""
    problems = _duplicates(items)
    sockets: dict[int, socket.socket] = {}
    if not problems:
        for item in items:
            try:
                sockets[item.port] = bind(item.host, item.port, item.flag)
            except PortInUse as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                problems.append(f"{item.host}:{item.port} ({item.flag}): {reason}")
    if problems:
        for sock in sockets.values():
            sock.close()
        raise PortsUnavailable(
            "cannot start; change these ports with their flags (or stop what holds them):\n  "
            + "\n  ".join(problems)
        )
    return sockets


def _duplicates(items: list[Wanted]) -> list[str]:
    """Ports that two flags name: each listener needs its own."""
    seen: dict[int, str] = {}
    problems = []
    for item in items:
        if item.port in seen:
            problems.append(f"{seen[item.port]} and {item.flag} both name port {item.port}")
        else:
            seen[item.port] = item.flag
    return problems
