"""Sending domains: create, configure, verify DNS, and rotate DKIM keys (spec §4.4).

The use cases behind ``/api/accounts/{aid}/sending_domains`` (and its ``/api/domains``
alias), the scheduler's re-checks and the ``postroom domain`` commands. Neighbours:
:mod:`postroom.domain.dnsrecords` says what to publish and how to judge an answer,
:mod:`postroom.services.dns` asks the name servers, :mod:`postroom.domain.keyrotation`
plans the key lifecycle, :mod:`postroom.domain.dkim` makes the keys, and
:mod:`postroom.storage.secrets` seals their private halves before they reach the database.

A domain gets two DKIM keys per *generation*: RSA (selector ``pr<n>r``, the ``dkim1``
record) and Ed25519 (``pr<n>e``, ``dkim2``). Keys are published first (pending) and sign
only once DNS serves them (active); a replaced key stays published for a grace period
(retiring) and then goes (retired). Every transition happens in :func:`verify`, from the
plan of :func:`postroom.domain.keyrotation.plan`, and is an event row written in the same
transaction as the state it describes.

A domain is verified when its return-path CNAME, SPF and DMARC records pass and each
algorithm has an active key whose record passes. The tracking CNAME is shown and checked
but not required; when it starts to pass, ``custom_domain_tracking_enabled`` is turned
on and tracking links use the domain's own host (:mod:`postroom.services.tracking`).
A check DNS could not answer (``network_error``) never unverifies.

As in :mod:`postroom.sandbox.inboxes`, anything slow or random (RSA generation, DNS) is
done before the write function is submitted, and every lookup is scoped to the caller's
account (another tenant's domain is NotFound).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from postroom.config import DomainSettings
from postroom.domain import dkim
from postroom.domain.dkim import Algorithm, DkimKey
from postroom.domain.dnsrecords import (
    ExpectedRecord,
    RecordKey,
    RecordType,
    Status,
    expected_records,
)
from postroom.domain.events import EventKind
from postroom.domain.keyrotation import KeyFacts, KeyState, RotationPlan, plan
from postroom.errors import Conflict, NotFound
from postroom.events.recorder import event_row
from postroom.services import Services
from postroom.services.dns import check_records
from postroom.storage.repos import domains as repo
from postroom.storage.secrets import Sealer

log = logging.getLogger("postroom.domains")

RSA: Algorithm = "rsa-sha256"
ED25519: Algorithm = "ed25519-sha256"
# Per algorithm: the selector suffix and the contract record that publishes its key.
_ALGORITHMS: dict[Algorithm, tuple[str, RecordKey]] = {
    RSA: ("r", RecordKey.DKIM1),
    ED25519: ("e", RecordKey.DKIM2),
}
_REQUIRED = (RecordKey.RETURN_PATH, RecordKey.SPF, RecordKey.DMARC)

#: The boolean settings a PATCH may change (the contract's five, the alert flags, and
#: Postroom's List-Unsubscribe headers on transactional mail).
FLAGS = (
    "open_tracking_enabled",
    "click_tracking_enabled",
    "auto_unsubscribe_link_enabled",
    "custom_domain_tracking_enabled",
    "health_alerts_enabled",
    "critical_alerts_enabled",
    "tracking_opt_out_enabled",
    "inbound_enabled",
    "list_unsubscribe_transactional_enabled",
)
COMPANY_FIELDS = (
    "name",
    "address",
    "city",
    "country",
    "zip_code",
    "website_url",
    "phone",
    "privacy_policy_url",
    "terms_of_service_url",
    "info_level",
)
COMPANY_REQUIRED = frozenset(COMPANY_FIELDS[:6])
INFO_LEVELS = ("business", "individual")
TEXT_MAX = 255
RECHECK_BATCH = 50  # domains per scheduler round
RECHECK_CONCURRENCY = 8  # domains checked at once (each asks ~7 names concurrently)

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_TRUE, _FALSE = {"true", "1"}, {"false", "0"}


# --- views --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShownRecord:
    """One record as the API lists it, with the status of its last check."""

    key: str  # the contract's key (``dkim1``), or ours for extras (``dkim1_next``)
    ident: str  # where its result lives in ``dns_results``; a DKIM key's follows its selector
    record: ExpectedRecord
    status: Status


@dataclass(frozen=True, slots=True)
class DomainView:
    """A domain row, all its keys (oldest first) and the records it must publish."""

    row: dict[str, Any]
    keys: list[dict[str, Any]]
    records: list[ShownRecord]

    @property
    def verified(self) -> bool:
        return bool(self.row["dns_verified"])

    @property
    def compliance_status(self) -> str:
        # Postroom reviews nothing but DNS: verified DNS is all compliance needs.
        return "compliant" if self.verified else "unverified_dns"


@dataclass(frozen=True, slots=True)
class _NewKey:
    selector: str
    algorithm: Algorithm
    sealed: bytes
    public_record: str


@dataclass(frozen=True, slots=True)
class _Generation:
    number: int
    keys: tuple[_NewKey, ...]


# --- validation ---------------------------------------------------------------------------


def ascii_name(name: str) -> str:
    """The A-label form of a domain name (IDNA), which is what DNS and DKIM ``d=`` hold."""
    return name.encode("idna").decode("ascii") if not name.isascii() else name


def _name_forms(name: str) -> set[str]:
    """The spellings a stored name may have: as given, A-labels, U-labels."""
    clean = name.strip().rstrip(".").lower()
    forms = {clean}
    # A name IDNA cannot convert has only the spelling it was given.
    with contextlib.suppress(UnicodeError):
        forms.add(ascii_name(clean))
        forms.add(ascii_name(clean).encode("ascii").decode("idna"))
    return forms


def _is_hostname(name: str) -> bool:
    # An address literal parses as an IP; a domain name does not.
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(name)
        return False
    try:
        encoded = ascii_name(name)
    except UnicodeError:
        return False
    labels = encoded.split(".")
    return (
        len(encoded) <= 253
        and len(labels) >= 2
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()  # no all-numeric top-level domain (RFC 3696 §2)
    )


def valid_domain_name(value: object) -> str:
    """The name to store (lower-cased, no trailing dot), or Conflict in Rails' words."""
    if not isinstance(value, str) or not value.strip():
        raise Conflict({"base": ["Validation failed: Domain name can't be blank"]})
    name = value.strip().rstrip(".").lower()
    if len(name) > 253 or not _is_hostname(name):
        raise Conflict({"base": ["Validation failed: Domain name is not a valid domain name"]})
    return name


def _flag(value: object) -> bool | None:
    # JSON booleans, and the strings/numbers form-style clients send (spec §9.6).
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else ""
    return True if text in _TRUE else False if text in _FALSE else None


def valid_changes(section: Mapping[str, Any]) -> dict[str, Any]:
    """Column values from a PATCH body; unknown fields are ignored, as Rails does."""
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name in FLAGS:
        if section.get(name) is not None:
            flag = _flag(section[name])
            if flag is None:
                errors[name] = ["is invalid"]
            else:
                values[name] = flag
    if "alert_recipient_email" in section:
        email = section["alert_recipient_email"]
        if email is None or email == "":
            values["alert_recipient_email"] = None
        elif isinstance(email, str) and len(email) <= 320 and _EMAIL.fullmatch(email.strip()):
            values["alert_recipient_email"] = email.strip()
        else:
            errors["alert_recipient_email"] = ["is invalid"]
    if errors:
        raise Conflict(errors)
    return values


def valid_company_info(section: Mapping[str, Any], *, partial: bool) -> dict[str, str | None]:
    """The fields given (all required ones unless ``partial``), cleaned, or Conflict."""
    values: dict[str, str | None] = {}
    errors: dict[str, list[str]] = {}
    for name in COMPANY_FIELDS:
        if name not in section:
            if not partial and name in COMPANY_REQUIRED:
                errors[name] = ["can't be blank"]
            continue
        value = section[name]
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # a zip code or phone number sent as a number
        if value is None or (isinstance(value, str) and not value.strip()):
            if name in COMPANY_REQUIRED:
                errors[name] = ["can't be blank"]
            else:
                values[name] = None
        elif not isinstance(value, str):
            errors[name] = ["is invalid"]
        elif len(value.strip()) > TEXT_MAX:
            errors[name] = [f"is too long (maximum is {TEXT_MAX} characters)"]
        elif name == "info_level" and value.strip() not in INFO_LEVELS:
            errors[name] = ["is not included in the list"]
        else:
            values[name] = value.strip()
    if errors:
        raise Conflict(errors)
    return values


def valid_email(value: object) -> str:
    if not isinstance(value, str) or len(value) > 320 or not _EMAIL.fullmatch(value.strip()):
        raise Conflict({"email": ["is invalid"]})
    return value.strip()


# --- the records a domain shows -----------------------------------------------------------


def _current(keys: Sequence[dict[str, Any]], algorithm: str) -> dict[str, Any] | None:
    """The key whose record is the algorithm's main one: the active, else the newest pending."""
    mine = [k for k in keys if k["algorithm"] == algorithm]
    for state in (KeyState.ACTIVE, KeyState.PENDING):
        candidates = [k for k in mine if k["state"] == state]
        if candidates:
            return max(candidates, key=lambda k: k["generation"])
    return None


def _dkim_ident(selector: str) -> str:
    return f"dkim:{selector}"


def _stored_status(results: Mapping[str, Any], ident: str, record: ExpectedRecord) -> Status:
    # A result counts only for the record it judged: a changed mail host or key makes
    # the record new, and so unchecked.
    found = results.get(ident)
    if not isinstance(found, dict):
        return Status.UNCHECKED
    if found.get("name") != record.name or found.get("value") != record.value:
        return Status.UNCHECKED
    try:
        return Status(str(found.get("status")))
    except ValueError:
        return Status.UNCHECKED


def shown_records(
    settings: DomainSettings, row: Mapping[str, Any], keys: Sequence[dict[str, Any]]
) -> list[ShownRecord]:
    """The records of a domain in setup-guide order, each with its last status.

    The main ``dkim1``/``dkim2`` records hold each algorithm's current key; a key being
    introduced is listed as ``dkim1_next`` and one being phased out as ``dkim1_previous``
    (so both stay published through a rotation). Retired keys are not listed.
    """
    domain = ascii_name(str(row["domain_name"]))
    live = [k for k in keys if k["state"] != KeyState.RETIRED]
    current = [k for k in (_current(live, alg) for alg in _ALGORITHMS) if k is not None]
    records = expected_records(
        domain,
        dkim=[(k["selector"], k["public_record"]) for k in current],
        spf_include=settings.spf_domain,
        return_path_label=settings.return_path_label,
        return_path_target=settings.mail_host,
        tracking_label=settings.tracking_label,
        tracking_target=settings.mail_host,
    )
    # zip stops early on purpose: an algorithm without a live key has no record.
    selectors = dict(
        zip((RecordKey.DKIM1, RecordKey.DKIM2), (k["selector"] for k in current), strict=False)
    )
    results: Mapping[str, Any] = row["dns_results"] or {}
    shown: list[ShownRecord] = []
    for record in records:
        if record.key is RecordKey.DMARC:
            shown += _extra_records(domain, live, current, results)
        selector = selectors.get(record.key)
        ident = _dkim_ident(selector) if selector else record.key.api_key
        status = _stored_status(results, ident, record)
        shown.append(ShownRecord(record.key.api_key, ident, record, status))
    return shown


def _extra_records(
    domain: str,
    live: Sequence[dict[str, Any]],
    current: Sequence[dict[str, Any]],
    results: Mapping[str, Any],
) -> list[ShownRecord]:
    current_ids = {k["id"] for k in current}
    extras: list[ShownRecord] = []
    for state, suffix in ((KeyState.PENDING, "next"), (KeyState.RETIRING, "previous")):
        for algorithm, (_, record_key) in _ALGORITHMS.items():
            others = [
                k
                for k in live
                if k["algorithm"] == algorithm
                and k["state"] == state
                and k["id"] not in current_ids
            ]
            # Newest first; a second key in the same role (two quick rotations) is "…2".
            others.sort(key=lambda k: k["generation"], reverse=True)
            for n, key in enumerate(others, start=1):
                name = f"{record_key.api_key}_{suffix}" + (str(n) if n > 1 else "")
                record = ExpectedRecord(
                    record_key,
                    RecordType.TXT,
                    f"{key['selector']}._domainkey.{domain}",
                    key["public_record"],
                    domain,
                )
                ident = _dkim_ident(key["selector"])
                extras.append(
                    ShownRecord(name, ident, record, _stored_status(results, ident, record))
                )
    return extras


def _view(settings: DomainSettings, row: dict[str, Any], keys: list[dict[str, Any]]) -> DomainView:
    return DomainView(row, keys, shown_records(settings, row, keys))


# --- reading ------------------------------------------------------------------------------


def _require(conn: Connection, account_id: int, domain_id: int) -> dict[str, Any]:
    row = repo.get_domain(conn, account_id, domain_id)
    if row is None:
        raise NotFound("sending domain")
    return row


def _load(services: Services, conn: Connection, account_id: int, domain_id: int) -> DomainView:
    row = _require(conn, account_id, domain_id)
    return _view(services.settings.domains, row, repo.list_keys(conn, [domain_id]))


def _load_many(
    services: Services, conn: Connection, rows: list[dict[str, Any]]
) -> list[DomainView]:
    keys = repo.list_keys(conn, [int(r["id"]) for r in rows])
    settings = services.settings.domains
    return [_view(settings, r, [k for k in keys if k["domain_id"] == r["id"]]) for r in rows]


async def list_domains(services: Services, account_id: int) -> list[DomainView]:
    return await services.db.read(
        lambda conn: _load_many(services, conn, repo.list_domains(conn, account_id))
    )


async def get(services: Services, account_id: int, domain_id: int) -> DomainView:
    return await services.db.read(lambda conn: _load(services, conn, account_id, domain_id))


# --- keys ---------------------------------------------------------------------------------


async def _generate(services: Services, number: int) -> _Generation:
    """A generation's keys, sealed. RSA generation takes ~100 ms: off the event loop."""
    rsa_key = await asyncio.to_thread(dkim.generate_rsa, services.settings.domains.rsa_bits)
    ed_key = dkim.generate_ed25519()
    sealer = services.get_sealer()
    keys = tuple(
        _NewKey(
            f"pr{number}{_ALGORITHMS[algorithm][0]}",
            algorithm,
            sealer.seal(dkim.private_pem(private)),
            dkim.public_record(private),
        )
        for algorithm, private in ((RSA, rsa_key), (ED25519, ed_key))
    )
    return _Generation(number, keys)


def _event(
    services: Services,
    row: Mapping[str, Any],
    kind: EventKind,
    now: datetime,
    **details: Any,
) -> dict[str, Any]:
    about = {"domain_id": row["id"], "domain_name": row["domain_name"], **details}
    return event_row(services.ids, int(row["account_id"]), kind, None, None, None, about, now)


def _key_details(key: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "selector": key["selector"],
        "algorithm": key["algorithm"],
        "generation": key["generation"],
    }


def _publish(
    services: Services,
    conn: Connection,
    row: Mapping[str, Any],
    generation: _Generation,
    now: datetime,
) -> list[dict[str, Any]]:
    """Insert a generation's keys as pending; returns their events."""
    events = []
    for key in generation.keys:
        values = {
            "domain_id": row["id"],
            "generation": generation.number,
            "selector": key.selector,
            "algorithm": key.algorithm,
            "private_key": key.sealed,
            "public_record": key.public_record,
            "state": KeyState.PENDING.value,
            "created_at": now,
        }
        repo.insert_key(conn, **values)
        events.append(_event(services, row, EventKind.DKIM_PUBLISHED, now, **_key_details(values)))
    return events


def _max_generation(keys: Sequence[Mapping[str, Any]]) -> int:
    return max((int(k["generation"]) for k in keys), default=0)


# --- writing ------------------------------------------------------------------------------


async def create(services: Services, account_id: int, domain_name: object) -> DomainView:
    """Add a domain with its first generation of keys, pending until DNS serves them."""
    name = valid_domain_name(domain_name)
    # One owner per domain across the installation, whatever the spelling (U-labels or
    # A-labels, case, trailing dot): a second account could otherwise sign and send as
    # a domain whose DNS vouches for the first. The unique constraint is the backstop.
    key = ascii_name(name)
    taken = Conflict({"domain_name": ["has already been taken"]})
    # Fail fast before spending an RSA generation on a duplicate.
    if await services.db.read(lambda conn: repo.name_taken(conn, key)):
        raise taken
    generation = await _generate(services, 1)
    now = services.clock.now()

    def run(conn: Connection) -> DomainView:
        if repo.name_taken(conn, key):
            raise taken
        domain_id = repo.insert_domain(
            conn,
            account_id=account_id,
            domain_name=name,
            ascii_name=key,
            dns_results={},
            created_at=now,
            updated_at=now,
        )
        row = _require(conn, account_id, domain_id)
        repo.insert_events(conn, _publish(services, conn, row, generation, now))
        return _load(services, conn, account_id, domain_id)

    try:
        return await services.db.write(run)
    except IntegrityError:
        # Another process inserted the same name between our check and our insert.
        raise taken from None


async def update(
    services: Services, account_id: int, domain_id: int, section: Mapping[str, Any]
) -> DomainView:
    values = {**valid_changes(section), "updated_at": services.clock.now()}

    def run(conn: Connection) -> DomainView:
        _require(conn, account_id, domain_id)
        repo.update_domain(conn, domain_id, **values)
        return _load(services, conn, account_id, domain_id)

    return await services.db.write(run)


async def delete(services: Services, account_id: int, domain_id: int) -> None:
    """Delete a domain and its keys: mail from it is no longer signed."""

    def run(conn: Connection) -> None:
        _require(conn, account_id, domain_id)
        repo.delete_domain(conn, domain_id)

    await services.db.write(run)
    # Sends from it are refused at once, here and in every other process.
    services.forget("verified_senders", account_id)


async def get_company_info(
    services: Services, account_id: int, domain_id: int
) -> dict[str, str | None]:
    row = await services.db.read(lambda conn: _require(conn, account_id, domain_id))
    return _company(row)


def _company(row: Mapping[str, Any]) -> dict[str, str | None]:
    stored: Mapping[str, Any] = row["company_info"] or {}
    return {name: stored.get(name) for name in COMPANY_FIELDS}


async def set_company_info(
    services: Services,
    account_id: int,
    domain_id: int,
    section: Mapping[str, Any],
    *,
    replace: bool,
) -> dict[str, str | None]:
    """POST (``replace``: all required fields, the rest cleared) or PATCH (merge)."""
    given = valid_company_info(section, partial=not replace)
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, str | None]:
        row = _require(conn, account_id, domain_id)
        merged = {**({} if replace else _company(row)), **given}
        info = {name: merged.get(name) for name in COMPANY_FIELDS}
        repo.update_domain(conn, domain_id, company_info=info, updated_at=now)
        return info

    return await services.db.write(run)


# --- verification and rotation ------------------------------------------------------------


def _facts(keys: Sequence[Mapping[str, Any]], results: Mapping[str, Any]) -> list[KeyFacts]:
    return [
        KeyFacts(
            id=int(k["id"]),
            algorithm=str(k["algorithm"]),
            generation=int(k["generation"]),
            state=KeyState(k["state"]),
            created_at=k["created_at"],
            activated_at=k["activated_at"],
            retiring_at=k["retiring_at"],
            record_passes=_result_status(results, _dkim_ident(k["selector"])) is Status.PASS,
        )
        for k in keys
    ]


def _result_status(results: Mapping[str, Any], ident: str) -> Status:
    found = results.get(ident)
    return Status(found["status"]) if isinstance(found, dict) else Status.UNCHECKED


def _plan(
    settings: DomainSettings,
    keys: Sequence[Mapping[str, Any]],
    results: Mapping[str, Any],
    now: datetime,
) -> RotationPlan:
    return plan(
        _facts(keys, results),
        now,
        rotation_days=settings.dkim_rotation_days,
        grace_days=settings.dkim_grace_days,
    )


_STAMPS = {
    KeyState.ACTIVE: ("activated_at", EventKind.DKIM_ACTIVATED),
    KeyState.RETIRING: ("retiring_at", EventKind.DKIM_RETIRING),
    KeyState.RETIRED: ("retired_at", EventKind.DKIM_RETIRED),
}


def _apply_plan(
    services: Services,
    conn: Connection,
    row: Mapping[str, Any],
    keys: Sequence[Mapping[str, Any]],
    changes: Mapping[int, KeyState],
    now: datetime,
) -> list[dict[str, Any]]:
    events = []
    # The story in order: the new key takes over, the old one steps back, the oldest goes.
    for state in (KeyState.ACTIVE, KeyState.RETIRING, KeyState.RETIRED):
        column, kind = _STAMPS[state]
        for key in keys:
            if changes.get(int(key["id"])) is state:
                repo.update_key(conn, int(key["id"]), state=state.value, **{column: now})
                events.append(_event(services, row, kind, now, **_key_details(key)))
    return events


def _verdict(view: DomainView, results: Mapping[str, Any]) -> tuple[bool | None, dict[str, str]]:
    """Whether the required records pass: True, False, or None when DNS could not say.

    Returns the verdict and the failing required records (contract key → status). A
    definite failure wins over a network error elsewhere: it is evidence, the error is not.
    """
    required = {s.ident: s.key for s in view.records if s.record.key in _REQUIRED}
    statuses = {key: _result_status(results, ident) for ident, key in required.items()}
    for algorithm, (_, record_key) in _ALGORITHMS.items():
        active = [k for k in view.keys if k["algorithm"] == algorithm and k["state"] == "active"]
        if not active:
            statuses[record_key.api_key] = Status.MISSING  # nothing signs for this algorithm
            continue
        newest = max(active, key=lambda k: k["generation"])
        statuses[record_key.api_key] = _result_status(results, _dkim_ident(newest["selector"]))
    failing = {k: s.value for k, s in statuses.items() if s is not Status.PASS}
    if any(s in (Status.FAIL, Status.MISSING, Status.SOFTFAIL) for s in statuses.values()):
        return False, failing
    if failing:
        return None, failing  # network errors (or unchecked): no verdict
    return True, failing


async def verify(services: Services, account_id: int, domain_id: int) -> DomainView:
    """Check every published record now, then apply the key plan and the verdict."""
    before = await get(services, account_id, domain_id)
    checks = await check_records(services.get_resolver(), [s.record for s in before.records])
    results = {
        shown.ident: {
            "key": shown.key,
            "name": record.name,
            "value": record.value,
            "status": status.value,
            "found": answers,
        }
        for shown, (record, status, answers) in zip(before.records, checks, strict=True)
    }
    now = services.clock.now()
    settings = services.settings.domains
    wanted = _plan(settings, before.keys, results, now).new_generation
    # Made outside the transaction (slow, random); used only if the plan made inside it,
    # on the keys as they are then, still asks for this generation.
    fresh = await _generate(services, wanted) if wanted is not None else None

    def run(conn: Connection) -> DomainView:
        row = _require(conn, account_id, domain_id)
        keys = repo.list_keys(conn, [domain_id])
        rotation = _plan(settings, keys, results, now)
        events = _apply_plan(services, conn, row, keys, rotation.changes, now)
        if fresh is not None and rotation.new_generation == fresh.number:
            events += _publish(services, conn, row, fresh, now)
        after = _view(settings, {**row, "dns_results": results}, repo.list_keys(conn, [domain_id]))
        verdict, failing = _verdict(after, results)
        values: dict[str, Any] = {"dns_results": results, "dns_checked_at": now}
        if _tracking_newly_passes(row, results):
            values["custom_domain_tracking_enabled"] = True  # links move to its own host
        if verdict is True and not row["dns_verified"]:
            values.update(dns_verified=True, dns_verified_at=now)
            events.append(_event(services, row, EventKind.DOMAIN_VERIFIED, now))
        elif verdict is False and row["dns_verified"]:
            values.update(dns_verified=False, dns_verified_at=None)
            events.append(
                _event(
                    services,
                    row,
                    EventKind.DOMAIN_FAILED,
                    now,
                    records=sorted(failing),
                    statuses=failing,
                )
            )
        repo.update_domain(conn, domain_id, **values)
        repo.insert_events(conn, events)
        return _load(services, conn, account_id, domain_id)

    view = await services.db.write(run)
    # Its verified state may have changed: every process re-reads the account's senders.
    services.forget("verified_senders", account_id)
    return view


def _tracking_newly_passes(row: Mapping[str, Any], results: Mapping[str, Any]) -> bool:
    """Whether the tracking CNAME passes now and did not at the previous check."""
    key = RecordKey.TRACKING.api_key
    before = _result_status(row["dns_results"] or {}, key)
    return _result_status(results, key) is Status.PASS and before is not Status.PASS


def _pending_conflict() -> Conflict:
    return Conflict(
        {"base": ["A DKIM rotation is already pending: publish its records and verify the domain"]}
    )


async def rotate(services: Services, account_id: int, domain_id: int) -> DomainView:
    """Publish a new generation of keys now (they sign once DNS serves them)."""
    before = await get(services, account_id, domain_id)
    if any(k["state"] == KeyState.PENDING for k in before.keys):
        raise _pending_conflict()
    fresh = await _generate(services, _max_generation(before.keys) + 1)
    now = services.clock.now()

    def run(conn: Connection) -> DomainView:
        row = _require(conn, account_id, domain_id)
        keys = repo.list_keys(conn, [domain_id])
        if any(k["state"] == KeyState.PENDING for k in keys) or (
            _max_generation(keys) + 1 != fresh.number
        ):
            raise _pending_conflict()  # a concurrent rotation got there first
        repo.insert_events(conn, _publish(services, conn, row, fresh, now))
        return _load(services, conn, account_id, domain_id)

    return await services.db.write(run)


async def recheck_due(services: Services, limit: int = RECHECK_BATCH) -> int:
    """Verify up to ``limit`` domains whose last check is old enough; returns how many.

    Settled (verified, no pending key) domains are re-checked every ``recheck_hours``;
    unverified ones and those awaiting a new key every ``pending_recheck_minutes``.
    Rotation and retirement happen through :func:`verify`'s plan.
    """
    now = services.clock.now()
    settings = services.settings.domains
    due = await services.db.read(
        lambda conn: repo.due_for_check(
            conn,
            settled_before=now - timedelta(hours=settings.recheck_hours),
            awaiting_before=now - timedelta(minutes=settings.pending_recheck_minutes),
            limit=limit,
        )
    )
    gate = asyncio.Semaphore(RECHECK_CONCURRENCY)

    async def one(account_id: int, domain_id: int) -> bool:
        async with gate:
            try:
                await verify(services, account_id, domain_id)
                return True
            except NotFound:
                return False  # deleted since it was listed
            except Exception:
                # One broken domain must not stop the others; it is retried next round.
                log.exception("DNS re-check of sending domain %s failed", domain_id)
                return False

    done = await asyncio.gather(*(one(account, domain) for account, domain in due))
    return sum(done)


# --- for the signing path and operators ---------------------------------------------------


def _algorithm(value: str) -> Algorithm:
    if value == RSA:
        return RSA
    if value == ED25519:
        return ED25519
    raise ValueError(f"unknown DKIM algorithm in storage: {value!r}")


def signing_keys(
    services: Services, conn: Connection, account_id: int, domain_name: str
) -> list[DkimKey]:
    """The keys that sign mail from ``domain_name``: the active keys of a verified domain.

    Empty when the domain is not the account's, not verified, or has no active key.
    """
    rows = repo.find_by_name(conn, _name_forms(domain_name), account_id)
    verified = [r for r in rows if r["dns_verified"]]
    if not verified:
        return []
    row = verified[0]
    active = [
        k for k in repo.list_keys(conn, [int(row["id"])]) if k["state"] == KeyState.ACTIVE.value
    ]
    sealer = services.get_sealer()
    domain = ascii_name(str(row["domain_name"]))
    return [
        DkimKey(
            selector=str(k["selector"]),
            domain=domain,
            algorithm=_algorithm(str(k["algorithm"])),
            private_key=_unsealed_key(sealer, bytes(k["private_key"])),
        )
        for k in active
    ]


@functools.lru_cache(maxsize=512)
def _unsealed_key(sealer: Sealer, sealed: bytes) -> dkim.PrivateKey:
    # Unsealing and parsing a PEM on every delivery round showed up at 9% of delivery
    # time; a sealed blob never changes (rotation makes new rows), so cache by it.
    return dkim.load_private_pem(sealer.open(sealed))


def verified_domain_names(conn: Connection, account_id: int) -> set[str]:
    """The names (as stored) of the account's verified domains."""
    return repo.verified_names(conn, account_id)


def find_for_operator(
    services: Services, domain_or_id: str, account_id: int | None = None
) -> tuple[int, int]:
    """``(account_id, domain_id)`` for a CLI argument: an id, or a name (unique, or in
    ``account_id``). Raises LookupError with a message for the operator."""

    def run(conn: Connection) -> tuple[int, int]:
        text = domain_or_id.strip()
        if text.isdigit():
            row = repo.find_by_id(conn, int(text))
            rows = [row] if row and account_id in (None, row["account_id"]) else []
        else:
            rows = repo.find_by_name(conn, _name_forms(text), account_id)
        if not rows:
            raise LookupError(f"no sending domain {domain_or_id!r}")
        if len(rows) > 1:
            accounts = ", ".join(str(r["account_id"]) for r in rows)
            raise LookupError(f"{domain_or_id!r} exists in accounts {accounts}: pass --account")
        return int(rows[0]["account_id"]), int(rows[0]["id"])

    return services.db.read_sync(run)


def list_for_operator(services: Services, account_id: int | None = None) -> list[DomainView]:
    """Every domain (of one account, or of all) for the CLI."""
    return services.db.read_sync(
        lambda conn: _load_many(services, conn, repo.list_domains(conn, account_id))
    )
