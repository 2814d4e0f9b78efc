"""Contacts: an account's audience, with custom fields, lists, imports, exports and events.

The contract's rules, kept here so that the API, CSV imports and list sends share them:

- A contact is one address per account (kept lower-case) with ``fields`` keyed by the
  account's custom fields' ``merge_tag``. A value must fit its field's ``data_type``
  (text ≤ 255 characters, integer, float, boolean, ``YYYY-MM-DD`` date); ``null`` clears
  it; an unknown merge tag is refused ("contains invalid values: …").
- A contact is ``unsubscribed`` when it said so (``unsubscribed: true``) or when any
  active suppression names its address; otherwise ``subscribed``.
- Never mailed: acceptance (:func:`unsubscribed_among`, called by
  :mod:`postroom.services.accept` with the suppression screen) rejects bulk-stream mail to
  a contact who unsubscribed, and suppressions reject mail of every stream as before. A
  send to a list (:func:`list_recipients`) leaves out unsubscribed and suppressed
  contacts altogether. Transactional mail (a receipt, a password reset) to a contact who
  unsubscribed from marketing still goes, as an unsubscription suppression of the bulk
  stream would let it.
- Imports (≤ :data:`IMPORT_MAX_ROWS` rows, JSON or CSV) are checked first, whole: any row
  in error answers 422 with every bad row's errors and imports nothing. A clean import is
  written in chunks of :data:`IMPORT_CHUNK` rows, each its own transaction, and its
  ``processed_count`` shows the progress; ``status`` goes ``started`` → ``finished``.
  Rows past the account's :data:`MAX_CONTACTS` are counted in
  ``contacts_over_limit_count`` and not created.
- Exports are made at once (CSV, one column per custom field) and kept in the database.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain.addresses import is_valid_email
from postroom.errors import Conflict, NotFound, ValidationFailed
from postroom.services import Services
from postroom.storage.repos import contacts as repo
from postroom.storage.repos import suppressions as suppression_repo

DATA_TYPES = ("text", "integer", "float", "boolean", "date")
MAX_FIELDS = 40  # per account, as the contract has it
MAX_CONTACTS = 1_000_000  # per account; more in an import counts as "over limit"
NAME_MAX = 80
LIST_NAME_MAX = 255
TEXT_MAX = 255
EVENT_NAME_MAX = 255
EVENT_PARAMS_MAX = 100
IMPORT_MAX_ROWS = 50_000
IMPORT_CHUNK = 500
IMPORT_MAX_ERRORS = 1000  # bad rows reported in one 422
SUBSCRIBED, UNSUBSCRIBED = "subscribed", "unsubscribed"
# The reject reason's "Reason: …" of bulk mail to a contact who unsubscribed.
CONTACT_UNSUBSCRIBED = "contact unsubscribed"
# Merge tags are the names templates use: {{first_name}}.
_MERGE_TAG = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def normal_email(email: str) -> str:
    return email.strip().lower()


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Conflict({name: ["can't be blank"]})
    if len(value) > limit:
        raise Conflict({name: [f"is too long (maximum is {limit} characters)"]})
    return value.strip()


# --- fields -------------------------------------------------------------------------------


async def list_fields(services: Services, account_id: int) -> list[dict[str, Any]]:
    return await services.db.read(lambda conn: repo.fields_of(conn, account_id))


async def get_field(services: Services, account_id: int, field_id: int) -> dict[str, Any]:
    return await services.db.read(lambda conn: _field(conn, account_id, field_id))


def _field(conn: Connection, account_id: int, field_id: int) -> dict[str, Any]:
    found = repo.field(conn, account_id, field_id)
    if found is None:
        raise NotFound("contact field")
    return found


def _merge_tag(value: Any) -> str:
    tag = _text(value, "merge_tag", NAME_MAX)
    if not _MERGE_TAG.fullmatch(tag):
        raise Conflict({"merge_tag": ["is invalid"]})
    return tag


def _taken(
    fields: Iterable[Mapping[str, Any]], skip: int | None, name: str | None, tag: str | None
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for other in fields:
        if other["id"] == skip:
            continue
        if name is not None and str(other["name"]).lower() == name.lower():
            errors["name"] = ["has already been taken"]
        if tag is not None and str(other["merge_tag"]).lower() == tag.lower():
            errors["merge_tag"] = ["has already been taken"]
    return errors


async def create_field(
    services: Services, account_id: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    name = _text(body.get("name"), "name", NAME_MAX)
    tag = _merge_tag(body.get("merge_tag"))
    data_type = body.get("data_type")
    if data_type not in DATA_TYPES:
        raise Conflict({"data_type": [f"must be one of: {', '.join(DATA_TYPES)}"]})
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, Any]:
        existing = repo.fields_of(conn, account_id)
        if len(existing) >= MAX_FIELDS:
            raise Conflict({"base": [f"Fields limit reached ({MAX_FIELDS})"]})
        if errors := _taken(existing, None, name, tag):
            raise Conflict(errors)
        row = {"account_id": account_id, "name": name, "merge_tag": tag, "data_type": data_type}
        return _field(conn, account_id, repo.insert_field(conn, {**row, "created_at": now}))

    return await services.db.write(run)


async def update_field(
    services: Services, account_id: int, field_id: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    name = _text(body["name"], "name", NAME_MAX) if "name" in body else None
    tag = _merge_tag(body["merge_tag"]) if "merge_tag" in body else None

    def run(conn: Connection) -> dict[str, Any]:
        current = _field(conn, account_id, field_id)
        wanted = body.get("data_type")
        if wanted is not None and wanted != current["data_type"]:
            raise Conflict({"data_type": ["cannot be changed"]})
        if errors := _taken(repo.fields_of(conn, account_id), field_id, name, tag):
            raise Conflict(errors)
        changes = {k: v for k, v in (("name", name), ("merge_tag", tag)) if v is not None}
        if tag is not None and tag != current["merge_tag"]:
            _rename_key(conn, account_id, str(current["merge_tag"]), tag)
        if changes:
            repo.update_field(conn, field_id, changes)
        return _field(conn, account_id, field_id)

    return await services.db.write(run)


def _rename_key(conn: Connection, account_id: int, old: str, new: str | None) -> None:
    """Move (or, with ``new`` None, drop) one field's values in every contact."""
    for contact in repo.all_of(conn, account_id):
        values = dict(contact["fields"] or {})
        if old not in values:
            continue
        value = values.pop(old)
        if new is not None:
            values[new] = value
        repo.update_contact(conn, str(contact["id"]), {"fields": values})


async def delete_field(services: Services, account_id: int, field_id: int) -> None:
    def run(conn: Connection) -> None:
        current = _field(conn, account_id, field_id)
        _rename_key(conn, account_id, str(current["merge_tag"]), None)
        repo.delete_field(conn, field_id)

    await services.db.write(run)


# --- lists --------------------------------------------------------------------------------


async def list_lists(
    services: Services, account_id: int, search: str | None = None
) -> list[dict[str, Any]]:
    rows = await services.db.read(lambda conn: repo.lists_of(conn, account_id))
    if search:
        rows = [r for r in rows if str(r["name"]).lower().startswith(search.lower())]
    return rows


def _list(conn: Connection, account_id: int, list_id: int) -> dict[str, Any]:
    found = repo.contact_list(conn, account_id, list_id)
    if found is None:
        raise NotFound("contact list")
    return found


async def get_list(services: Services, account_id: int, list_id: int) -> dict[str, Any]:
    return await services.db.read(lambda conn: _list(conn, account_id, list_id))


async def create_list(
    services: Services, account_id: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    name = _text(body.get("name"), "name", LIST_NAME_MAX)
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, Any]:
        row = {"account_id": account_id, "name": name, "created_at": now}
        return _list(conn, account_id, repo.insert_list(conn, row))

    return await services.db.write(run)


async def update_list(
    services: Services, account_id: int, list_id: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    name = _text(body.get("name"), "name", LIST_NAME_MAX)

    def run(conn: Connection) -> dict[str, Any]:
        _list(conn, account_id, list_id)
        repo.rename_list(conn, list_id, name)
        return _list(conn, account_id, list_id)

    return await services.db.write(run)


async def delete_list(services: Services, account_id: int, list_id: int) -> None:
    def run(conn: Connection) -> None:
        _list(conn, account_id, list_id)
        repo.delete_list(conn, list_id)

    await services.db.write(run)


# --- contacts -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Contact:
    """A contact as the API shows it."""

    row: dict[str, Any]
    list_ids: list[int]
    status: str


def _check_value(value: Any, data_type: str) -> Any:
    """The value as stored, or ValueError when it does not fit ``data_type``."""
    if data_type == "text":
        if isinstance(value, str) and len(value) <= TEXT_MAX:
            return value
    elif data_type == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif data_type == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    elif data_type == "boolean":
        if isinstance(value, bool):
            return value
    elif data_type == "date" and isinstance(value, str):
        return date.fromisoformat(value).isoformat() if len(value) == 10 else _bad()
    raise ValueError(data_type)


def _bad() -> Any:
    raise ValueError("date")


def clean_fields(
    values: Any, types: Mapping[str, str], current: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """``current`` with ``values`` applied (null clears), and the errors found."""
    result = dict(current or {})
    if values is None:
        return result, []
    if not isinstance(values, dict):
        return result, ["must be an object"]
    unknown = [k for k in values if k not in types]
    errors = [f"contains invalid values: {', '.join(map(str, unknown))}"] if unknown else []
    for key, value in values.items():
        if key in unknown:
            continue
        if value is None:
            result.pop(key, None)
            continue
        try:
            result[key] = _check_value(value, types[key])
        except ValueError:
            errors.append(f"{key} must be a {types[key]}")
    return result, errors


def _ids(value: Any, name: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise Conflict({name: ["must be an array of list ids"]})
    return list(dict.fromkeys(value))


def _check_lists(conn: Connection, account_id: int, ids: Iterable[int], name: str) -> None:
    wanted = set(ids)
    missing = sorted(wanted - repo.existing_list_ids(conn, account_id, wanted))
    if missing:
        raise Conflict({name: [f"contains unknown list ids: {', '.join(map(str, missing))}"]})


def statuses(
    conn: Connection, account_id: int, rows: Sequence[Mapping[str, Any]], now: datetime
) -> dict[str, str]:
    """Contact id → ``subscribed``/``unsubscribed`` (own choice or any active suppression)."""
    suppressed: set[str] = set()
    for start in range(0, len(rows), 500):  # bounded IN lists, however large the account
        pairs = [(account_id, str(r["email"])) for r in rows[start : start + 500]]
        suppressed |= {str(e["email"]) for e in suppression_repo.active_for(conn, pairs, now)}
    return {
        str(r["id"]): UNSUBSCRIBED if r["unsubscribed"] or r["email"] in suppressed else SUBSCRIBED
        for r in rows
    }


def _shown(conn: Connection, account_id: int, row: dict[str, Any], now: datetime) -> Contact:
    status = statuses(conn, account_id, [row], now)[str(row["id"])]
    return Contact(row, repo.list_ids_of(conn, [str(row["id"])])[str(row["id"])], status)


def _find(conn: Connection, account_id: int, identifier: str) -> dict[str, Any] | None:
    if _UUID.fullmatch(identifier):
        return repo.by_id(conn, account_id, identifier.lower())
    return repo.by_email(conn, account_id, normal_email(identifier))


def _require(conn: Connection, account_id: int, identifier: str) -> dict[str, Any]:
    found = _find(conn, account_id, identifier)
    if found is None:
        raise NotFound("contact")
    return found


def _email(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Conflict({"email": ["can't be blank"]})
    email = normal_email(value)
    if not is_valid_email(email):
        raise Conflict({"email": ["is invalid"]})
    return email


def _types(conn: Connection, account_id: int) -> dict[str, str]:
    return {str(f["merge_tag"]): str(f["data_type"]) for f in repo.fields_of(conn, account_id)}


async def get_contact(services: Services, account_id: int, identifier: str) -> Contact:
    now = services.clock.now()

    def run(conn: Connection) -> Contact:
        return _shown(conn, account_id, _require(conn, account_id, identifier), now)

    return await services.db.read(run)


async def create_contact(
    services: Services, account_id: int, section: Mapping[str, Any]
) -> Contact:
    email = _email(section.get("email"))
    list_ids = _ids(section.get("list_ids"), "list_ids")
    now = services.clock.now()
    contact_id = services.ids.message_id()

    def run(conn: Connection) -> Contact:
        if repo.by_email(conn, account_id, email) is not None:
            raise Conflict({"email": ["has already been taken"]})
        if repo.count(conn, account_id) >= MAX_CONTACTS:
            raise Conflict({"base": ["contacts limit reached"]})
        values, errors = clean_fields(section.get("fields"), _types(conn, account_id))
        if errors:
            raise Conflict({"fields": errors})
        _check_lists(conn, account_id, list_ids, "list_ids")
        row = {
            "id": contact_id,
            "account_id": account_id,
            "email": email,
            "fields": values,
            "unsubscribed": False,
            "created_at": now,
            "updated_at": now,
        }
        repo.insert_contact(conn, row)
        repo.add_memberships(conn, contact_id, list_ids)
        return _shown(conn, account_id, _require(conn, account_id, contact_id), now)

    return await services.db.write(run)


async def update_contact(
    services: Services, account_id: int, identifier: str, section: Mapping[str, Any]
) -> tuple[str, Contact]:
    """Change a contact; an address that is no contact yet is created (``action``)."""
    email = _email(section["email"]) if section.get("email") is not None else None
    included = _ids(section.get("list_ids_included"), "list_ids_included")
    excluded = _ids(section.get("list_ids_excluded"), "list_ids_excluded")
    if both := sorted(set(included) & set(excluded)):
        raise Conflict(
            {"base": [f"same list_ids {both} are specified both as included and excluded"]}
        )
    unsubscribed = section.get("unsubscribed")
    if unsubscribed is not None and not isinstance(unsubscribed, bool):
        raise Conflict({"unsubscribed": ["must be true or false"]})
    now = services.clock.now()
    new_id = services.ids.message_id()

    def run(conn: Connection) -> tuple[str, Contact]:
        current = _find(conn, account_id, identifier)
        action = "updated"
        if current is None:
            if _UUID.fullmatch(identifier):
                raise NotFound("contact")
            address = email or _email(identifier)
            if repo.count(conn, account_id) >= MAX_CONTACTS:
                raise Conflict({"base": ["contacts limit reached"]})
            current = {
                "id": new_id,
                "account_id": account_id,
                "email": address,
                "fields": {},
                "unsubscribed": False,
                "created_at": now,
                "updated_at": now,
            }
            repo.insert_contact(conn, current)
            action = "created"
        contact_id = str(current["id"])
        if (
            email is not None
            and email != current["email"]
            and repo.by_email(conn, account_id, email) is not None
        ):
            raise Conflict({"email": ["has already been taken"]})
        values, errors = clean_fields(
            section.get("fields"), _types(conn, account_id), current["fields"] or {}
        )
        if errors:
            raise Conflict({"fields": errors})
        _check_lists(conn, account_id, [*included, *excluded], "list_ids")
        changes: dict[str, Any] = {"fields": values, "updated_at": now}
        if email is not None:
            changes["email"] = email
        if unsubscribed is not None:
            changes["unsubscribed"] = unsubscribed
        repo.update_contact(conn, contact_id, changes)
        repo.add_memberships(conn, contact_id, included)
        repo.remove_memberships(conn, contact_id, excluded)
        return action, _shown(conn, account_id, _require(conn, account_id, contact_id), now)

    return await services.db.write(run)


async def delete_contact(services: Services, account_id: int, identifier: str) -> None:
    def run(conn: Connection) -> None:
        repo.delete_contact(conn, str(_require(conn, account_id, identifier)["id"]))

    await services.db.write(run)


# --- events -------------------------------------------------------------------------------


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


async def create_event(
    services: Services, account_id: int, identifier: str, body: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Record that the contact did ``name``; returns (the contact row, the event)."""
    name = _text(body.get("name"), "name", EVENT_NAME_MAX)
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise Conflict({"params": ["must be an object"]})
    if len(params) > EVENT_PARAMS_MAX:
        raise Conflict({"params": [f"has too many keys (maximum is {EVENT_PARAMS_MAX})"]})
    if any(len(str(k)) > EVENT_NAME_MAX for k in params):
        raise Conflict({"params": [f"keys must be at most {EVENT_NAME_MAX} characters"]})
    if not all(_scalar(v) for v in params.values()):
        raise Conflict({"params": ["values must be strings, numbers, booleans or null"]})
    now = services.clock.now()

    def run(conn: Connection) -> tuple[dict[str, Any], dict[str, Any]]:
        contact = _require(conn, account_id, identifier)
        event = {
            "account_id": account_id,
            "contact_id": contact["id"],
            "name": name,
            "params": params,
            "created_at": now,
        }
        repo.insert_event(conn, event)
        return contact, event

    return await services.db.write(run)


# --- imports ------------------------------------------------------------------------------


@dataclass(slots=True)
class ImportRow:
    email: str
    fields: dict[str, Any]
    included: list[int]
    excluded: list[int]


@dataclass(slots=True)
class RowErrors:
    """One bad row of an import, in the contract's shape."""

    email: str
    errors: dict[str, list[str]] = field(default_factory=dict)


class ImportRefused(Exception):
    """Rows of an import are in error: nothing was imported."""

    def __init__(self, rows: list[RowErrors]) -> None:
        super().__init__(f"{len(rows)} row(s) in error")
        self.rows = rows


def _import_row(raw: Any, types: Mapping[str, str], lists: set[int]) -> ImportRow | RowErrors:
    if not isinstance(raw, dict):
        return RowErrors("", {"base": ["must be an object"]})
    given = raw.get("email")
    bad = RowErrors(str(given) if isinstance(given, str) else "")
    email = normal_email(given) if isinstance(given, str) else ""
    if not email:
        bad.errors["email"] = ["can't be blank"]
    elif not is_valid_email(email):
        bad.errors["email"] = ["is invalid"]
    values, problems = clean_fields(raw.get("fields"), types)
    if problems:
        bad.errors["fields"] = problems
    included = excluded = []
    try:
        included = _ids(raw.get("list_ids_included"), "list_ids_included")
        excluded = _ids(raw.get("list_ids_excluded"), "list_ids_excluded")
    except Conflict as exc:
        bad.errors.setdefault("base", []).extend(
            f"{k} {m}" for k, v in exc.field_errors.items() for m in v
        )
    if both := sorted(set(included) & set(excluded)):
        bad.errors.setdefault("base", []).append(
            f"same list_ids {both} are specified both as included and excluded"
        )
    if unknown := sorted(set(included + excluded) - lists):
        bad.errors.setdefault("base", []).append(
            f"unknown list_ids: {', '.join(map(str, unknown))}"
        )
    if bad.errors:
        return bad
    return ImportRow(email, values, included, excluded)


def parse_csv(text: str) -> list[dict[str, Any]]:
    """CSV import rows: ``email``, optional ``list_ids_included``/``list_ids_excluded``
    (ids separated by ``;``) and one column per merge tag (empty cells are left out).
    Cells are text; :func:`import_contacts` turns them into each field's type."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "email" not in reader.fieldnames:
        raise ValidationFailed(["CSV must have a header row with an 'email' column"])
    rows: list[dict[str, Any]] = []
    try:
        for record in reader:
            row: dict[str, Any] = {"email": record.get("email") or "", "fields": {}, "csv": True}
            for key, cell in record.items():
                if key is None or key == "email" or cell in (None, ""):
                    continue
                if key in ("list_ids_included", "list_ids_excluded"):
                    parts = [p.strip() for p in str(cell).split(";") if p.strip()]
                    row[key] = [int(p) if p.isdigit() else p for p in parts]
                else:
                    row["fields"][key] = cell
            rows.append(row)
            if len(rows) > IMPORT_MAX_ROWS:
                break
    except csv.Error as exc:
        raise ValidationFailed([f"CSV line {reader.line_num}: {exc}"]) from None
    return rows


def _from_csv(values: dict[str, Any], types: Mapping[str, str]) -> dict[str, Any]:
    """CSV cells typed by their fields (a cell that does not parse stays text: refused)."""
    typed: dict[str, Any] = {}
    for key, cell in values.items():
        kind = types.get(key)
        try:
            if kind == "integer":
                typed[key] = int(cell)
            elif kind == "float":
                typed[key] = float(cell)
            elif kind == "boolean" and cell.lower() in ("true", "false", "1", "0"):
                typed[key] = cell.lower() in ("true", "1")
            else:
                typed[key] = cell
        except ValueError:
            typed[key] = cell
    return typed


async def import_contacts(services: Services, account_id: int, rows: Any) -> dict[str, Any]:
    """Check every row, then import (see the module docstring); returns the import row."""
    if not isinstance(rows, list) or not rows:
        raise ValidationFailed(["contacts must be a non-empty array"])
    if len(rows) > IMPORT_MAX_ROWS:
        raise ValidationFailed([f"at most {IMPORT_MAX_ROWS} contacts per import"])

    def check(conn: Connection) -> tuple[list[ImportRow], list[RowErrors]]:
        types = _types(conn, account_id)
        lists = {int(r["id"]) for r in repo.lists_of(conn, account_id)}
        good: list[ImportRow] = []
        bad: list[RowErrors] = []
        for raw in rows:
            if isinstance(raw, dict) and raw.get("csv"):
                raw = {**raw, "fields": _from_csv(raw.get("fields") or {}, types)}
            found = _import_row(raw, types, lists)
            (bad if isinstance(found, RowErrors) else good).append(found)  # type: ignore[arg-type]
        return good, bad

    good, bad = await services.db.read(check)
    if bad:
        raise ImportRefused(bad[:IMPORT_MAX_ERRORS])
    # The same address twice: the later row wins, as if imported one after the other.
    merged: dict[str, ImportRow] = {}
    for row in good:
        earlier = merged.get(row.email)
        if earlier is not None:
            row = ImportRow(
                row.email,
                {**earlier.fields, **row.fields},
                [i for i in earlier.included if i not in row.excluded] + row.included,
                [i for i in earlier.excluded if i not in row.included] + row.excluded,
            )
        merged[row.email] = row
    work = list(merged.values())
    now = services.clock.now()
    job = {
        "account_id": account_id,
        "status": "started",
        "total_count": len(work),
        "processed_count": 0,
        "created_count": 0,
        "updated_count": 0,
        "over_limit_count": 0,
        "created_at": now,
        "updated_at": now,
    }
    import_id = await services.db.write(lambda conn: repo.insert_import(conn, dict(job)))
    for start in range(0, len(work), IMPORT_CHUNK):
        chunk = work[start : start + IMPORT_CHUNK]
        ids = [services.ids.message_id() for _ in chunk]
        done = start + len(chunk) == len(work)
        await services.db.write(
            lambda conn, c=chunk, i=ids, d=done: _import_chunk(  # type: ignore[misc]
                conn, services, account_id, import_id, c, i, d
            )
        )
    return await get_import(services, account_id, import_id)


def _import_chunk(
    conn: Connection,
    services: Services,
    account_id: int,
    import_id: int,
    chunk: list[ImportRow],
    new_ids: list[str],
    last: bool,
) -> None:
    now = services.clock.now()
    job = repo.get_import(conn, account_id, import_id)
    assert job is not None
    existing = repo.by_emails(conn, account_id, [r.email for r in chunk])
    room = MAX_CONTACTS - repo.count(conn, account_id)
    created = updated = over = 0
    for row, new_id in zip(chunk, new_ids, strict=True):
        current = existing.get(row.email)
        if current is None:
            if room <= 0:
                over += 1
                continue
            room -= 1
            repo.insert_contact(
                conn,
                {
                    "id": new_id,
                    "account_id": account_id,
                    "email": row.email,
                    "fields": row.fields,
                    "unsubscribed": False,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            contact_id = new_id
            created += 1
        else:
            contact_id = str(current["id"])
            values = {**(current["fields"] or {}), **row.fields}
            repo.update_contact(conn, contact_id, {"fields": values, "updated_at": now})
            updated += 1
        repo.add_memberships(conn, contact_id, row.included)
        repo.remove_memberships(conn, contact_id, row.excluded)
    repo.update_import(
        conn,
        import_id,
        {
            "processed_count": int(job["processed_count"]) + len(chunk),
            "created_count": int(job["created_count"]) + created,
            "updated_count": int(job["updated_count"]) + updated,
            "over_limit_count": int(job["over_limit_count"]) + over,
            "status": "finished" if last else "started",
            "updated_at": now,
        },
    )


async def get_import(services: Services, account_id: int, import_id: int) -> dict[str, Any]:
    def run(conn: Connection) -> dict[str, Any]:
        found = repo.get_import(conn, account_id, import_id)
        if found is None:
            raise NotFound("contact import")
        return found

    return await services.db.read(run)


# --- exports ------------------------------------------------------------------------------


def _filters(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    filters = body.get("filters") or []
    if not isinstance(filters, list):
        raise Conflict({"filters": ["must be an array"]})
    for item in filters:
        if not isinstance(item, dict) or item.get("operator") != "equal":
            raise Conflict({"filters": ["each filter needs a name, operator 'equal' and a value"]})
        if item.get("name") == "list_id":
            _ids(item.get("value"), "filters")
        elif item.get("name") == "subscription_status":
            if item.get("value") not in (SUBSCRIBED, UNSUBSCRIBED):
                raise Conflict({"filters": ["subscription_status is subscribed or unsubscribed"]})
        else:
            raise Conflict({"filters": [f"unknown filter: {item.get('name')}"]})
    return list(filters)


def _export_csv(
    conn: Connection, account_id: int, filters: list[dict[str, Any]], now: datetime
) -> str:
    rows = repo.all_of(conn, account_id)
    lists = repo.list_ids_of(conn, [str(r["id"]) for r in rows])
    status = statuses(conn, account_id, rows, now)
    tags = [str(f["merge_tag"]) for f in repo.fields_of(conn, account_id)]
    for item in filters:
        if item["name"] == "list_id":
            wanted = set(item["value"] or [])
            rows = [r for r in rows if wanted & set(lists[str(r["id"])])]
        else:
            rows = [r for r in rows if status[str(r["id"])] == item["value"]]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "email", "status", "list_ids", "created_at", "updated_at", *tags])
    for r in rows:
        values = r["fields"] or {}
        writer.writerow(
            [
                r["id"],
                r["email"],
                status[str(r["id"])],
                ";".join(map(str, lists[str(r["id"])])),
                r["created_at"].isoformat(),
                r["updated_at"].isoformat(),
                *(_cell(values.get(tag)) for tag in tags),
            ]
        )
    return out.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    # A cell a spreadsheet would run as a formula is quoted (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


async def create_export(
    services: Services, account_id: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    filters = _filters(body)
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, Any]:
        row = {
            "account_id": account_id,
            "status": "finished",
            "filters": filters,
            "content": _export_csv(conn, account_id, filters, now),
            "created_at": now,
            "updated_at": now,
        }
        found = repo.get_export(conn, account_id, repo.insert_export(conn, row))
        assert found is not None
        return found

    return await services.db.write(run)


async def get_export(services: Services, account_id: int, export_id: int) -> dict[str, Any]:
    def run(conn: Connection) -> dict[str, Any]:
        found = repo.get_export(conn, account_id, export_id)
        if found is None:
            raise NotFound("contact export")
        return found

    return await services.db.read(run)


# --- sending --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recipient:
    email: str
    fields: dict[str, Any]


async def list_recipients(
    services: Services, account_id: int, list_ids: Sequence[int]
) -> list[Recipient]:
    """The subscribed contacts of the lists (each once): whom a list send goes to."""
    now = services.clock.now()

    def run(conn: Connection) -> list[Recipient]:
        _check_lists(conn, account_id, list_ids, "list_ids")
        rows = repo.members(conn, account_id, list_ids)
        status = statuses(conn, account_id, rows, now)
        return [
            Recipient(str(r["email"]), dict(r["fields"] or {}))
            for r in rows
            if status[str(r["id"])] == SUBSCRIBED
        ]

    return await services.db.read(run)


def unsubscribed_among(conn: Connection, pairs: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which (account, lower-case address) pairs are contacts who unsubscribed."""
    by_account: dict[int, set[str]] = {}
    for account_id, email in pairs:
        by_account.setdefault(account_id, set()).add(email)
    return {
        (account_id, email)
        for account_id, emails in sorted(by_account.items())
        for email in repo.unsubscribed_emails(conn, account_id, emails)
    }
