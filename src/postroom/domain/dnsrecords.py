"""The DNS records a sending domain publishes, and how to judge what DNS answers for them.

Pure: no I/O. :mod:`postroom.services.dns` asks the name servers; this module says what
to publish, where, and whether the published answer is right.

The record set (our key → the Mailtrap contract's ``key`` from spec §4.4):

- ``return_path`` → ``verification``: CNAME ``<rp label>.<domain>`` → ``<return_path_target>``
- ``spf`` → ``spf``: TXT ``<domain>`` = ``v=spf1 include:<spf_include> ~all``
- ``dkim1``, ``dkim2`` → same: TXT ``<selector>._domainkey.<domain>`` = ``v=DKIM1; k=rsa; p=…``
- ``dmarc`` → ``dmarc``: TXT ``_dmarc.<domain>`` = ``v=DMARC1; p=none; rua=mailto:dmarc@<domain>``
- ``tracking`` → ``link_verification`` (optional): CNAME ``<tracking label>.<domain>`` →
  ``<tracking_target>``

Why these and not others:

- The return path is a CNAME only (no MX/TXT alternative). One record delegates the
  bounce domain to us: its MX (bounces reach our inbound listener), its A and its SPF
  record (RFC 7208 checks the MAIL FROM domain, which is this one, so SPF aligns under
  DMARC's relaxed alignment) all come from the target we control. Give it an
  unguessable per-domain label and it doubles as proof of ownership, which is why it maps
  onto the contract's ``verification`` record (Mailtrap does the same).
- Two DKIM selectors (RFC 6376) so a key can rotate: publish the next key beside the
  current one, verify it, then switch. The contract knows ``dkim1`` and ``dkim2`` only.
- SPF at the domain itself covers mail whose envelope sender is the bare domain.
- DMARC (RFC 7489) with any policy is enough to pass; ``p=none`` is the safe suggestion.

Status rules (:meth:`ExpectedRecord.check`; ``answers`` are the TXT strings, each record's
character-strings already concatenated, or the CNAME target):

- spf: the TXT records starting with ``v=spf1`` (RFC 7208 §4.5). None → missing; more than
  one → fail (a permerror for receivers); one → pass when it has ``include:<spf_include>``
  (case-insensitive, ``+`` qualifier allowed), else fail. ``-``/``~``/``?include:`` do not
  authorise us, so they fail.
- dkim: no TXT → missing. Pass only when exactly one record is published and it is a valid
  tag list (RFC 6376 §3.2, no duplicate tags) with ``v=DKIM1`` first if present, our ``k``
  (default rsa), our ``p`` ignoring whitespace, ``s`` allowing email and ``h`` allowing
  sha256. Anything else fails: a second record is ambiguous (§3.6.2.2 leaves the choice
  to the verifier) and an empty ``p`` is a revoked key.
- dmarc: TXT records starting ``v=DMARC`` (any case) are DMARC attempts; others are
  ignored. None → missing; more than one → fail (§6.6.3: receivers then apply no policy);
  one → pass when it is a valid tag list whose first tag is exactly ``v=DMARC1`` and
  ``p`` is none, quarantine or reject, else fail. Organisational-domain fallback (needs
  the public suffix list) is not considered.
- return_path, tracking: no CNAME → missing; target equal to ours (case-insensitive,
  trailing dot ignored) → pass; another target → fail.

``unchecked`` is the state before any check and ``network_error`` is what the service
reports when DNS could not answer. No rule produces ``softfail``; it exists because the
contract has it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """The outcome of checking one record, spelled as the Mailtrap contract spells it."""

    PASS = "pass"
    FAIL = "fail"
    MISSING = "missing"
    SOFTFAIL = "softfail"
    NETWORK_ERROR = "network_error"
    UNCHECKED = "unchecked"


class RecordType(StrEnum):
    """The DNS record types we ask domain owners to publish."""

    TXT = "TXT"
    CNAME = "CNAME"


class RecordKey(StrEnum):
    """What a record is for; :attr:`api_key` is the contract's name for it."""

    RETURN_PATH = "return_path"
    SPF = "spf"
    DKIM1 = "dkim1"
    DKIM2 = "dkim2"
    DMARC = "dmarc"
    TRACKING = "tracking"

    @property
    def api_key(self) -> str:
        """The ``key`` of this record in the Mailtrap contract (spec §4.4)."""
        return _API_KEYS.get(self, self.value)


_API_KEYS = {RecordKey.RETURN_PATH: "verification", RecordKey.TRACKING: "link_verification"}
_DKIM_KEYS = (RecordKey.DKIM1, RecordKey.DKIM2)


@dataclass(frozen=True)
class ExpectedRecord:
    """One record a domain owner must publish: where, what, and how to judge the answer."""

    key: RecordKey
    type: RecordType
    name: str
    value: str
    domain: str

    @property
    def relative_name(self) -> str:
        """The name relative to the domain, as DNS panels ask for it ("@" at the apex)."""
        if self.name == self.domain:
            return "@"
        return self.name.removesuffix("." + self.domain)

    def check(self, answers: Sequence[str]) -> Status:
        """Judge what DNS answered at :attr:`name` for :attr:`type` (see the module rules)."""
        if self.type is RecordType.CNAME:
            return check_cname(self.value, answers)
        if self.key is RecordKey.SPF:
            return check_spf(self.value, answers)
        if self.key is RecordKey.DMARC:
            return check_dmarc(answers)
        return check_dkim(self.value, answers)


def expected_records(
    domain: str,
    *,
    dkim: Sequence[tuple[str, str]],
    spf_include: str,
    return_path_label: str,
    return_path_target: str,
    tracking_label: str | None = None,
    tracking_target: str | None = None,
) -> list[ExpectedRecord]:
    """The records ``domain`` must publish, in the order a setup guide lists them.

    ``dkim`` is one or two ``(selector, TXT value)`` pairs (see :func:`dkim_value`); the
    tracking CNAME is included only when both its label and its target are given.
    """
    domain = _fqdn(domain)
    if (tracking_label is None) != (tracking_target is None):
        raise ValueError("tracking_label and tracking_target go together")
    records = [
        _record(domain, RecordKey.RETURN_PATH, return_path_label, _fqdn(return_path_target)),
        _record(domain, RecordKey.SPF, None, f"v=spf1 include:{_fqdn(spf_include)} ~all"),
        *_dkim_records(domain, dkim),
        _record(domain, RecordKey.DMARC, "_dmarc", f"v=DMARC1; p=none; rua=mailto:dmarc@{domain}"),
    ]
    if tracking_label is not None and tracking_target is not None:
        records.append(_record(domain, RecordKey.TRACKING, tracking_label, _fqdn(tracking_target)))
    return records


def _record(domain: str, key: RecordKey, label: str | None, value: str) -> ExpectedRecord:
    name = f"{_fqdn(label)}.{domain}" if label else domain
    return ExpectedRecord(key, _TYPES.get(key, RecordType.TXT), name, value, domain)


_TYPES = {RecordKey.RETURN_PATH: RecordType.CNAME, RecordKey.TRACKING: RecordType.CNAME}


def _dkim_records(domain: str, dkim: Sequence[tuple[str, str]]) -> list[ExpectedRecord]:
    if not 1 <= len(dkim) <= len(_DKIM_KEYS):
        raise ValueError("one or two DKIM selectors are supported (dkim1, dkim2)")
    records = []
    for key, (selector, value) in zip(_DKIM_KEYS, dkim, strict=False):
        if _dkim_key(value) is None:
            raise ValueError(f"DKIM value for selector {selector!r} is not a DKIM key record")
        records.append(_record(domain, key, f"{selector}._domainkey", value))
    return records


def dkim_value(public_key_b64: str, algorithm: str = "rsa") -> str:
    """The DKIM key record (RFC 6376 §3.6.1) for a base64 public key."""
    return f"v=DKIM1; k={algorithm}; p={''.join(public_key_b64.split())}"


# --- SPF (RFC 7208) ---------------------------------------------------------------


def check_spf(expected: str, answers: Sequence[str]) -> Status:
    """Pass when the domain's one SPF record includes every include of ``expected``."""
    records = [answer for answer in answers if _is_spf(answer)]
    if not records:
        return Status.MISSING
    if len(records) > 1:
        return Status.FAIL
    return Status.PASS if _spf_includes(expected) <= _spf_includes(records[0]) else Status.FAIL


def _is_spf(txt: str) -> bool:
    # §4.5: exactly "v=spf1" then a space or the end; "v=spf10" is not an SPF record.
    lowered = txt.lower()
    return lowered == "v=spf1" or lowered.startswith("v=spf1 ")


def _spf_includes(record: str) -> set[str]:
    # Only pass-qualified includes ("include:" or "+include:") authorise the included hosts.
    includes: set[str] = set()
    for term in record.split()[1:]:
        mechanism, _, target = term.removeprefix("+").partition(":")
        if mechanism.lower() == "include" and target:
            includes.add(_fqdn(target))
    return includes


# --- DKIM (RFC 6376) --------------------------------------------------------------


def check_dkim(expected: str, answers: Sequence[str]) -> Status:
    """Pass when the selector holds exactly one key record, and it is ours."""
    if not answers:
        return Status.MISSING
    if len(answers) > 1:
        return Status.FAIL
    key = _dkim_key(answers[0])
    return Status.PASS if key is not None and key == _dkim_key(expected) else Status.FAIL


def _dkim_key(txt: str) -> tuple[str, str] | None:
    """``(k, p)`` of a usable email key record, or None when the record is not one."""
    tags = parse_tag_list(txt)
    if tags is None or "p" not in tags:
        return None
    if "v" in tags and (next(iter(tags)) != "v" or tags["v"] != "DKIM1"):
        return None
    if not _allows(tags.get("s", "*"), {"*", "email"}) or not _allows(tags.get("h"), {"sha256"}):
        return None
    return tags.get("k", "rsa").lower(), "".join(tags["p"].split())


def _allows(colon_list: str | None, wanted: set[str]) -> bool:
    # An absent list (h=) allows everything; a present one must name one of ``wanted``.
    if colon_list is None:
        return True
    return bool({item.strip().lower() for item in colon_list.split(":")} & wanted)


_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def parse_tag_list(text: str) -> dict[str, str] | None:
    """An RFC 6376 §3.2 tag list (also DMARC's syntax) in order, or None when malformed.

    Malformed: a spec without ``=``, a bad tag name, an empty spec other than a trailing
    one, or a duplicate tag (which invalidates the whole list).
    """
    specs = text.split(";")
    if specs and not specs[-1].strip():
        specs.pop()
    tags: dict[str, str] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep or not _TAG_NAME.fullmatch(name) or name in tags:
            return None
        tags[name] = value.strip()
    return tags


# --- DMARC (RFC 7489) -------------------------------------------------------------

_DMARC_POLICIES = frozenset({"none", "quarantine", "reject"})


def check_dmarc(answers: Sequence[str]) -> Status:
    """Pass when ``_dmarc`` holds exactly one well-formed DMARC1 record, whatever its policy."""
    attempts = [answer for answer in answers if answer.lstrip().lower().startswith("v=dmarc")]
    if not attempts:
        return Status.MISSING
    if len(attempts) > 1:
        return Status.FAIL
    return Status.PASS if _valid_dmarc(attempts[0]) else Status.FAIL


def _valid_dmarc(txt: str) -> bool:
    # §6.4: "v" must be the first tag and match "DMARC1" precisely; "p" is required.
    tags = parse_tag_list(txt)
    if tags is None or next(iter(tags), None) != "v" or tags["v"] != "DMARC1":
        return False
    return tags.get("p", "").lower() in _DMARC_POLICIES


# --- CNAME ------------------------------------------------------------------------


def check_cname(expected: str, answers: Sequence[str]) -> Status:
    """Pass when the name is a CNAME to ``expected``."""
    if not answers:
        return Status.MISSING
    return Status.PASS if _fqdn(expected) in {_fqdn(answer) for answer in answers} else Status.FAIL


def _fqdn(name: str) -> str:
    # DNS names compare case-insensitively, and "host." and "host" are the same name here.
    return name.strip().rstrip(".").lower()
