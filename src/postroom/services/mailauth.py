"""SPF, DKIM and DMARC of a received message, looked up through the installation's DNS.

SPF is pyspf's (RFC 7208, its limits of 10 lookups), DKIM dkimpy's verifier (every
signature, not only the topmost), DMARC :mod:`postroom.domain.dmarc`. Both libraries ask
DNS synchronously and are run in a worker thread; their lookups are answered by the
resolver of ``settings.dns`` (:meth:`Services.get_resolver`) on the event loop, so one
``dns.server`` setting serves every lookup Postroom makes. (pyspf's lookup function is
module-global; it is replaced once, and defers to the original outside these checks.)

The result is stored with the message and shown by the API::

    {"spf": {"result": "pass", "domain": "example.com"},
     "dkim": {"result": "pass", "signatures": [{"domain": …, "selector": …, "result": …}]},
     "dmarc": {"result": "pass", "policy": "reject", "domain": "example.com"}}
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from collections.abc import Coroutine
from typing import Any, TypeVar

import dkim
import spf

from postroom.domain import dmarc
from postroom.services import Services
from postroom.services.dns import DnsUnavailable, Resolver

log = logging.getLogger("postroom.inbound")
T = TypeVar("T")
_Bridge = tuple[Resolver, asyncio.AbstractEventLoop, float]
_BRIDGE: contextvars.ContextVar[_Bridge | None] = contextvars.ContextVar(
    "postroom_mailauth_dns", default=None
)
_ORIGINAL_SPF_LOOKUP = spf.DNSLookup
_SIGNATURE = re.compile(rb"^dkim-signature:", re.IGNORECASE | re.MULTILINE)


def _ask(bridge: _Bridge, coro: Coroutine[Any, Any, T]) -> T:
    resolver, loop, timeout = bridge
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout * 2 + 1)


def _spf_lookup(name: str, qtype: str, tcpfallback: bool = True, timeout: int = 30) -> Any:
    bridge = _BRIDGE.get()
    if bridge is None:
        return _ORIGINAL_SPF_LOOKUP(name, qtype, tcpfallback, timeout)
    resolver = bridge[0]
    try:
        if qtype == "TXT":
            return [((name, qtype), [t.encode()]) for t in _ask(bridge, resolver.txt(name))]
        if qtype in ("A", "AAAA"):
            found = _ask(bridge, resolver.a(name))
            return [((name, qtype), a) for a in found if (":" in a) == (qtype == "AAAA")]
        if qtype == "MX":
            return [((name, qtype), mx) for mx in _ask(bridge, resolver.mx(name))]
    except DnsUnavailable as exc:
        raise spf.TempError(f"DNS {exc}") from None
    except ValueError:  # not a DNS name
        return []
    return []  # SPF (type 99, obsolete) and PTR (deprecated mechanism): nothing


spf.DNSLookup = _spf_lookup


def _dkim_txt(name: bytes, timeout: int = 5) -> bytes | None:
    bridge = _BRIDGE.get()
    if bridge is None:
        return None
    try:
        found = _ask(bridge, bridge[0].txt(name.decode("ascii", "replace")))
    except (DnsUnavailable, ValueError):
        return None
    return found[0].encode() if found else None


def _spf_check(client_ip: str, mail_from: str, helo: str, timeout: float) -> dict[str, str]:
    domain = mail_from.rpartition("@")[2].lower() if "@" in mail_from else helo.lower()
    if not client_ip or not domain:
        return {"result": "none", "domain": domain}
    sender = mail_from if "@" in mail_from else f"postmaster@{helo}"
    try:
        result, _ = spf.check2(i=client_ip, s=sender, h=helo or domain, timeout=int(timeout) + 1)
    except Exception:  # a library error is no verdict on the sender
        log.exception("SPF check of %s from %s failed", sender, client_ip)
        result = "temperror"
    return {"result": str(result), "domain": domain}


def _dkim_check(raw: bytes) -> dict[str, Any]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    count = len(_SIGNATURE.findall(head))
    signatures: list[dict[str, Any]] = []
    for idx in range(count):
        checker = dkim.DKIM(raw)
        try:
            ok = bool(checker.verify(idx=idx, dnsfunc=_dkim_txt))
        except Exception:  # a malformed signature fails, whatever dkimpy raises
            ok = False
        domain = checker.domain.decode() if isinstance(checker.domain, bytes) else None
        selector = checker.selector.decode() if isinstance(checker.selector, bytes) else None
        signatures.append(
            {"domain": domain, "selector": selector, "result": "pass" if ok else "fail"}
        )
    if not signatures:
        result = "none"
    else:
        result = "pass" if any(s["result"] == "pass" for s in signatures) else "fail"
    return {"result": result, "signatures": signatures}


async def _dmarc(
    resolver: Resolver, from_domain: str, spf_result: dict[str, str], dkim_result: dict[str, Any]
) -> dmarc.DmarcResult:
    if not from_domain:
        return dmarc.DmarcResult("none", "none", "")
    try:
        record = dmarc.parse_record(await resolver.txt(f"_dmarc.{from_domain}"))
        at_org = False
        if record is None:
            org = dmarc.organizational_domain(from_domain)
            if org != from_domain:
                record = dmarc.parse_record(await resolver.txt(f"_dmarc.{org}"))
                at_org = True
    except (DnsUnavailable, ValueError):
        return dmarc.DmarcResult("temperror", "none", from_domain)
    passed = [
        str(s["domain"]) for s in dkim_result["signatures"] if s["result"] == "pass" and s["domain"]
    ]
    return dmarc.evaluate(
        from_domain, record, at_org, spf_result["result"], spf_result["domain"], passed
    )


def unchecked() -> dict[str, Any]:
    return {
        "spf": {"result": "none", "domain": ""},
        "dkim": {"result": "none", "signatures": []},
        "dmarc": {"result": "none", "policy": "none", "domain": ""},
    }


async def authenticate(
    services: Services, raw: bytes, client_ip: str, helo: str, mail_from: str, from_domain: str
) -> dict[str, Any]:
    """SPF, DKIM and DMARC results of one received message (see the module doc)."""
    if not services.settings.inbound.check_authentication:
        return unchecked()
    resolver = services.get_resolver()
    timeout = services.settings.dns.timeout
    token = _BRIDGE.set((resolver, asyncio.get_running_loop(), timeout))
    try:  # to_thread copies this context: the worker's lookups find the bridge
        spf_result = await asyncio.to_thread(_spf_check, client_ip, mail_from, helo, timeout)
        dkim_result = await asyncio.to_thread(_dkim_check, raw)
    finally:
        _BRIDGE.reset(token)
    found = await _dmarc(resolver, from_domain, spf_result, dkim_result)
    return {"spf": spf_result, "dkim": dkim_result, "dmarc": found.as_json()}
