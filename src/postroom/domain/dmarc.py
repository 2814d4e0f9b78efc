"""DMARC (RFC 7489) evaluation of a received message, from SPF and DKIM results.

Pure: the caller looks up the records (``_dmarc.<From domain>``, else
``_dmarc.<organizational domain>``) and passes what it found. The organizational domain
is the registrable domain by the Public Suffix List (the ``publicsuffixlist`` package
ships its copy of the list; nothing is fetched at run time).

- Alignment is relaxed unless the record says ``aspf=s``/``adkim=s``: relaxed means the
  same organizational domain, strict the same name.
- DMARC passes when SPF passed for an aligned MAIL FROM domain, or a DKIM signature of an
  aligned ``d=`` verified. No record: ``none``. A lookup that failed: ``temperror``.
- The policy applied is ``sp`` for a subdomain whose record was found at the
  organizational domain, else ``p`` (an unknown value counts as ``none``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

POLICIES = ("none", "quarantine", "reject")


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """The registrable domain of ``domain`` (itself when the list knows no better)."""
    name = domain.strip(".").lower()
    return _psl().privatesuffix(name) or name


def parse_record(texts: Iterable[str]) -> dict[str, str] | None:
    """The tags of the one DMARC record among TXT ``texts`` (None: none, or several)."""
    found = [t for t in texts if t.strip().lower().startswith("v=dmarc1")]
    if len(found) != 1:
        return None
    tags: dict[str, str] = {}
    for part in found[0].split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = value.strip()
    return tags


def _aligned(domain: str, other: str, strict: bool) -> bool:
    a, b = domain.strip(".").lower(), other.strip(".").lower()
    if strict:
        return a == b
    return organizational_domain(a) == organizational_domain(b)


@dataclass(frozen=True, slots=True)
class DmarcResult:
    result: str  # pass, fail, none, temperror
    policy: str  # none, quarantine, reject (what the domain asks for a failure)
    domain: str  # the From domain evaluated

    def as_json(self) -> dict[str, str]:
        return {"result": self.result, "policy": self.policy, "domain": self.domain}


def evaluate(
    from_domain: str,
    record: dict[str, str] | None,
    record_at_org: bool,
    spf_result: str,
    spf_domain: str,
    dkim_domains: Iterable[str],
) -> DmarcResult:
    """DMARC for a message whose From domain is ``from_domain`` (see the module doc)."""
    if record is None:
        return DmarcResult("none", "none", from_domain)
    policy = record.get("p", "none").lower()
    if record_at_org and from_domain.lower() != organizational_domain(from_domain):
        policy = record.get("sp", policy).lower()
    if policy not in POLICIES:
        policy = "none"
    spf_ok = spf_result == "pass" and _aligned(
        spf_domain, from_domain, record.get("aspf", "r").lower() == "s"
    )
    strict_dkim = record.get("adkim", "r").lower() == "s"
    dkim_ok = any(_aligned(d, from_domain, strict_dkim) for d in dkim_domains)
    return DmarcResult("pass" if spf_ok or dkim_ok else "fail", policy, from_domain)
