"""Contacts API (the official contacts spec; spec §4.8): contacts, custom fields, lists,
imports, exports and contact events, on both path families (api/families.py).

Shapes as the contract has them: a contact is wrapped in ``{"data": …}`` with epoch-ms
``created_at``/``updated_at`` (PATCH adds ``"action": "created"|"updated"``: it creates a
contact named by an address that is none yet); lists and fields are flat; creates answer
201 except a list's (200, as the spec says); deletes answer an empty 204. A contact is
named by its id (UUID) or its address, raw (``a+b@example.com``, as the Node SDK sends
it) or URL-encoded (the Python SDK).

Postroom's additions: ``POST …/contacts/imports`` also takes ``text/csv`` (columns
``email``, ``list_ids_included``/``list_ids_excluded`` with ids separated by ``;``, and
one per merge tag); an import shows ``total_count`` and ``processed_count``; an export's
``url`` is ``GET …/contacts/exports/{id}/download`` (the CSV, same token).
Reading needs the ``read`` scope, changing needs ``admin``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from postroom.api.auth import services_of
from postroom.api.body import read_body, read_json, read_json_object
from postroom.api.families import Acting, Routes
from postroom.api.params import Id
from postroom.api.responses import json_response
from postroom.errors import NotFound, ValidationFailed
from postroom.services import contacts

router = APIRouter(tags=["contacts"])
routes = Routes(router, "/contacts")

BODY_LIMIT = 64 * 1024
# 50,000 rows with a few fields each.
IMPORT_LIMIT = 50 * 1024 * 1024


def _millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def contact_json(contact: contacts.Contact) -> dict[str, Any]:
    row = contact.row
    return {
        "id": str(row["id"]),
        "email": row["email"],
        "fields": dict(row["fields"] or {}),
        "list_ids": contact.list_ids,
        "status": contact.status,
        "created_at": _millis(row["created_at"]),
        "updated_at": _millis(row["updated_at"]),
    }


def field_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "name": row["name"],
        "data_type": row["data_type"],
        "merge_tag": row["merge_tag"],
    }


def list_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": int(row["id"]), "name": row["name"]}


def import_json(row: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {"id": int(row["id"]), "status": row["status"]}
    if row["status"] == "finished":  # the counts are final only then (the spec's rule)
        shown.update(
            created_contacts_count=row["created_count"],
            updated_contacts_count=row["updated_count"],
            contacts_over_limit_count=row["over_limit_count"],
        )
    shown.update(total_count=row["total_count"], processed_count=row["processed_count"])
    return shown


def export_json(request: Request, account_id: int, row: dict[str, Any]) -> dict[str, Any]:
    base = services_of(request).settings.server.public_url or str(request.base_url)
    url = None
    if row["status"] == "finished":
        url = f"{base.rstrip('/')}/api/accounts/{account_id}/contacts/exports/{row['id']}/download"
    return {
        "id": int(row["id"]),
        "status": row["status"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "url": url,
    }


async def _object(request: Request) -> dict[str, Any]:
    return await read_json_object(request, BODY_LIMIT)


async def _section(request: Request) -> dict[str, Any]:
    """The ``contact`` object (Rails' require), or the flat body when unwrapped."""
    body = await _object(request)
    section = body.get("contact", body)
    if not isinstance(section, dict) or not section:
        raise ValidationFailed(["param is missing or the value is empty: contact"])
    return section


# --- fields -------------------------------------------------------------------------------


@routes.get("/fields", scope="read", summary="List contact fields")
async def list_fields(request: Request, caller: Acting) -> Response:
    rows = await contacts.list_fields(services_of(request), caller.account_id)
    return json_response([field_json(r) for r in rows])


@routes.post("/fields", scope="admin", summary="Create a contact field", status_code=201)
async def create_field(request: Request, caller: Acting) -> Response:
    body = await _object(request)
    row = await contacts.create_field(services_of(request), caller.account_id, body)
    return json_response(field_json(row), 201)


@routes.get("/fields/{field_id}", scope="read", summary="Get a contact field")
async def get_field(field_id: Id, request: Request, caller: Acting) -> Response:
    row = await contacts.get_field(services_of(request), caller.account_id, field_id)
    return json_response(field_json(row))


@routes.patch("/fields/{field_id}", scope="admin", summary="Update a contact field")
async def update_field(field_id: Id, request: Request, caller: Acting) -> Response:
    body = await _object(request)
    row = await contacts.update_field(services_of(request), caller.account_id, field_id, body)
    return json_response(field_json(row))


@routes.delete(
    "/fields/{field_id}", scope="admin", summary="Delete a contact field", status_code=204
)
async def delete_field(field_id: Id, request: Request, caller: Acting) -> Response:
    await contacts.delete_field(services_of(request), caller.account_id, field_id)
    return Response(status_code=204)


# --- lists --------------------------------------------------------------------------------


@routes.get("/lists", scope="read", summary="List contact lists")
async def list_lists(
    request: Request,
    caller: Acting,
    search: Annotated[str | None, Query(max_length=255)] = None,
) -> Response:
    rows = await contacts.list_lists(services_of(request), caller.account_id, search)
    return json_response([list_json(r) for r in rows])


@routes.post("/lists", scope="admin", summary="Create a contact list")
async def create_list(request: Request, caller: Acting) -> Response:
    body = await _object(request)
    row = await contacts.create_list(services_of(request), caller.account_id, body)
    return json_response(list_json(row))


@routes.get("/lists/{list_id}", scope="read", summary="Get a contact list")
async def get_list(list_id: Id, request: Request, caller: Acting) -> Response:
    row = await contacts.get_list(services_of(request), caller.account_id, list_id)
    return json_response(list_json(row))


@routes.patch("/lists/{list_id}", scope="admin", summary="Rename a contact list")
async def update_list(list_id: Id, request: Request, caller: Acting) -> Response:
    body = await _object(request)
    row = await contacts.update_list(services_of(request), caller.account_id, list_id, body)
    return json_response(list_json(row))


@routes.delete("/lists/{list_id}", scope="admin", summary="Delete a contact list", status_code=204)
async def delete_list(list_id: Id, request: Request, caller: Acting) -> Response:
    await contacts.delete_list(services_of(request), caller.account_id, list_id)
    return Response(status_code=204)


# --- imports and exports ------------------------------------------------------------------


@routes.post(
    "/imports",
    scope="admin",
    summary="Import contacts (JSON, or CSV with Content-Type text/csv)",
    status_code=201,
)
async def import_contacts(request: Request, caller: Acting) -> Response:
    services = services_of(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == "text/csv":
        raw = await read_body(request, IMPORT_LIMIT)
        rows: Any = contacts.parse_csv(raw.decode("utf-8-sig", "replace"))
    else:
        body = await read_json(request, IMPORT_LIMIT)
        rows = body.get("contacts") if isinstance(body, dict) else None
    try:
        row = await contacts.import_contacts(services, caller.account_id, rows)
    except contacts.ImportRefused as refused:
        errors = [{"email": r.email, "errors": r.errors} for r in refused.rows]
        return json_response({"errors": errors}, 422)
    return json_response(import_json(row), 201)


@routes.get("/imports/{import_id}", scope="read", summary="Get a contact import")
async def get_import(import_id: Id, request: Request, caller: Acting) -> Response:
    row = await contacts.get_import(services_of(request), caller.account_id, import_id)
    return json_response(import_json(row))


@routes.post("/exports", scope="read", summary="Export contacts", status_code=201)
async def create_export(request: Request, caller: Acting) -> Response:
    body = await _object(request)
    row = await contacts.create_export(services_of(request), caller.account_id, body)
    return json_response(export_json(request, caller.account_id, row), 201)


@routes.get("/exports/{export_id}", scope="read", summary="Get a contact export")
async def get_export(export_id: Id, request: Request, caller: Acting) -> Response:
    row = await contacts.get_export(services_of(request), caller.account_id, export_id)
    return json_response(export_json(request, caller.account_id, row))


@routes.get("/exports/{export_id}/download", scope="read", summary="Download an export (CSV)")
async def download_export(export_id: Id, request: Request, caller: Acting) -> Response:
    row = await contacts.get_export(services_of(request), caller.account_id, export_id)
    if row["content"] is None:
        raise NotFound("contact export")
    return Response(
        str(row["content"]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="contacts-{row["id"]}.csv"'},
    )


# --- contacts (after the fixed paths above: an identifier is anything else) --------------


@routes.post("", scope="admin", summary="Create a contact", status_code=201)
async def create_contact(request: Request, caller: Acting) -> Response:
    section = await _section(request)
    found = await contacts.create_contact(services_of(request), caller.account_id, section)
    return json_response({"data": contact_json(found)}, 201)


@routes.get("/{contact_identifier}", scope="read", summary="Get a contact")
async def get_contact(contact_identifier: str, request: Request, caller: Acting) -> Response:
    found = await contacts.get_contact(services_of(request), caller.account_id, contact_identifier)
    return json_response({"data": contact_json(found)})


@routes.patch("/{contact_identifier}", scope="admin", summary="Update (or create) a contact")
async def update_contact(contact_identifier: str, request: Request, caller: Acting) -> Response:
    section = await _section(request)
    action, found = await contacts.update_contact(
        services_of(request), caller.account_id, contact_identifier, section
    )
    return json_response({"action": action, "data": contact_json(found)})


@routes.delete("/{contact_identifier}", scope="admin", summary="Delete a contact", status_code=204)
async def delete_contact(contact_identifier: str, request: Request, caller: Acting) -> Response:
    await contacts.delete_contact(services_of(request), caller.account_id, contact_identifier)
    return Response(status_code=204)


@routes.post(
    "/{contact_identifier}/events", scope="admin", summary="Record a contact event", status_code=201
)
async def create_event(contact_identifier: str, request: Request, caller: Acting) -> Response:
    body = await _object(request)
    contact, event = await contacts.create_event(
        services_of(request), caller.account_id, contact_identifier, body
    )
    return json_response(
        {
            "contact_id": str(contact["id"]),
            "contact_email": contact["email"],
            "name": event["name"],
            "params": event["params"],
        },
        201,
    )
