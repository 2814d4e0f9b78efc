"""Sandbox (Email Testing) management API, spec §4.9: projects, inboxes, messages, parts.

Thin on purpose: each route is declared once with :class:`~postroom.api.families.Routes`
and answers on both path families and under both names of an inbox: the SDKs'
``/api/accounts/{account_id}/inboxes/…`` and the sandbox spec's ``/api/sandboxes/…`` (the
token's own account), likewise ``/api/projects``. Its guard authenticates and checks the
account and the scope (``read`` for GET, ``admin`` for writes); the route calls a use case of
:mod:`postroom.sandbox.inboxes` / :mod:`postroom.sandbox.messages`, and shapes the JSON
exactly as the official SDKs' models require (every required field present; extra
fields are ignored by the SDKs).

Message bodies are attacker-controlled: HTML is served under a Content-Security-Policy
that forbids scripts, network access and same-origin privileges, and every body or
attachment response carries ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from postroom.api.auth import services_of
from postroom.api.body import read_json
from postroom.api.docs import ForwardBody, InboxBody, MessageBody, ProjectBody, json_body
from postroom.api.families import Acting, Caller, Routes
from postroom.api.params import MAX_ID, Id
from postroom.api.responses import json_response
from postroom.errors import ValidationFailed
from postroom.sandbox import blacklists, forward, htmlcheck, inboxes, messages, spam
from postroom.sandbox.credentials import smtp_password
from postroom.sandbox.inboxes import InboxView, ProjectView
from postroom.sandbox.messages import AttachmentPart
from postroom.services import Services
from postroom.services.auth import Principal

router = APIRouter(tags=["sandbox"])
T = TypeVar("T")

BODY_LIMIT = 64 * 1024  # management bodies are a name or a flag
NOSNIFF = {"X-Content-Type-Options": "nosniff"}
# Email HTML may carry scripts, forms and tracking pixels: allow inline styles and
# embedded images only, and ``sandbox`` gives the document a unique (opaque) origin.
HTML_CSP = "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'; sandbox"
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._ -]")
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


# --- helpers ----------------------------------------------------------------------------


async def _section(request: Request, key: str, alias: str | None = None) -> dict[str, Any]:
    """The ``{"<key>": {...}}`` wrapper object of a request body (or ``{"<alias>": …}``:
    the SDKs wrap an inbox in ``inbox``, the sandbox spec in ``sandbox``)."""
    body = await read_json(request, BODY_LIMIT)
    section = body.get(key) if isinstance(body, dict) else None
    if section is None and alias and isinstance(body, dict):
        section = body.get(alias)
    if not isinstance(section, dict):
        raise ValidationFailed([f"param is missing or the value is empty: {key}"])
    return section


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and ``Z``, as the contract's timestamps are."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def human_size(size: int) -> str:
    """Rails' ``number_to_human_size``: "0 Bytes", "1 Byte", "1.21 KB", "10 MB"."""
    if size < 1024:
        return f"{size} Byte" if size == 1 else f"{size} Bytes"
    value, units = size / 1024, ["KB", "MB", "GB", "TB"]
    while value >= 1024 and len(units) > 1:
        value, units = value / 1024, units[1:]
    unit = units[0]
    decimals = max(3 - len(str(int(value))), 0)
    text = f"{value:.{decimals}f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + f" {unit}"


def _host(services: Services) -> str:
    """The host name clients reach this server at (SMTP and API alike)."""
    server = services.settings.server
    if server.public_url:
        return urlsplit(server.public_url).hostname or "127.0.0.1"
    return "127.0.0.1" if server.host in _WILDCARD_HOSTS else server.host


def _base_url(services: Services) -> str:
    server = services.settings.server
    if server.public_url:
        return server.public_url.rstrip("/")
    scheme = "https" if server.tls_cert else "http"
    return f"{scheme}://{_host(services)}:{server.port}"


def _smtp_ports(services: Services) -> list[int]:
    """The submission ports that take an inbox's SMTP credentials (every listener does)."""
    settings = services.settings
    has_tls = settings.smtp_tls_files() is not None
    listeners = settings.submission.listeners()
    return [port for _, port, implicit in listeners if has_tls or not implicit]


def _permissions(who: Principal) -> dict[str, bool]:
    admin = "admin" in who.scopes
    return {"can_read": True, "can_update": admin, "can_destroy": admin, "can_leave": False}


# --- JSON shapes --------------------------------------------------------------------------


def _password(services: Services, who: Principal, row: dict[str, Any]) -> str | None:
    # Mailtrap shows the SMTP password only to those who may administer the inbox, and
    # only then is it unsealed (None if this process's key cannot: logged there).
    if "admin" not in who.scopes:
        return None
    return smtp_password(services.get_sealer(), row)


def inbox_json(services: Services, who: Principal, view: InboxView) -> dict[str, Any]:
    row, host = view.row, _host(services)
    return {
        "id": row["id"],
        "name": row["name"],
        "username": row["username"],
        "password": _password(services, who, row),
        "max_size": row["max_size"],
        "status": "active",
        "email_username": row["email_username"],
        "email_username_enabled": row["email_username_enabled"],
        "sent_messages_count": row["sent_messages_count"],
        "forwarded_messages_count": view.forwarded_count,
        "used": view.emails_count > 0,
        "forward_from_email_address": f"a{row['account_id']}-i{row['id']}@{host}",
        "project_id": row["project_id"],
        "domain": host,
        "pop3_domain": host,
        "email_domain": host,
        "api_domain": host,
        "emails_count": view.emails_count,
        "emails_unread_count": view.unread_count,
        "last_message_sent_at": iso(row["last_message_sent_at"]),
        "smtp_ports": _smtp_ports(services),
        "pop3_ports": [],
        "max_message_size": row["max_message_size"],
        "permissions": _permissions(who),
    }


def project_json(services: Services, who: Principal, view: ProjectView) -> dict[str, Any]:
    inboxes_shown = [inbox_json(services, who, inbox) for inbox in view.inboxes]
    shaped: dict[str, Any] = {
        "id": view.row["id"],
        "name": view.row["name"],
        "inboxes": inboxes_shown,
        "sandboxes": inboxes_shown,  # the sandbox spec's name for the same list
        "permissions": _permissions(who),
    }
    if "admin" in who.scopes:
        # Postroom has no share tokens: both links lead to the project in the dashboard.
        link = f"{_base_url(services)}/projects/{view.row['id']}"
        shaped["share_links"] = {"admin": link, "viewer": link}
    return shaped


def _message_path(row: dict[str, Any]) -> str:
    return f"/api/accounts/{row['account_id']}/inboxes/{row['inbox_id']}/messages/{row['id']}"


def message_json(services: Services, row: dict[str, Any]) -> dict[str, Any]:
    path = _message_path(row)
    return {
        "id": row["id"],
        "inbox_id": row["inbox_id"],
        "sandbox_id": row["inbox_id"],  # the sandbox spec's name (the SDKs': inbox_id)
        "subject": row["subject"],
        "sent_at": iso(row["created_at"]),
        "from_email": row["from_email"],
        "from_name": row["from_name"],
        "to_email": row["to_email"],
        "to_name": row["to_name"],
        "email_size": row["email_size"],
        "is_read": row["is_read"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        # The spec's integer: 0 when the message was not rendered from a template.
        "template_id": row.get("template_id") or 0,
        "template_variables": row.get("template_variables"),
        "html_body_size": row["html_body_size"],
        "text_body_size": row["text_body_size"],
        "human_size": human_size(row["email_size"]),
        "html_path": f"{path}/body.html",
        "txt_path": f"{path}/body.txt",
        "raw_path": f"{path}/body.raw",
        "download_path": f"{path}/body.eml",
        "html_source_path": f"{path}/body.htmlsource",
        "blacklists_report_info": blacklists.info(services.settings.sandbox, row),
        "smtp_information": {
            "ok": True,
            "data": {"mail_from_addr": row["mail_from"], "client_ip": row["client_ip"] or ""},
        },
    }


def attachment_json(row: dict[str, Any], part: AttachmentPart) -> dict[str, Any]:
    return {
        "id": part.id,
        "message_id": row["id"],
        "filename": part.filename,
        "attachment_type": part.disposition,
        "content_type": part.content_type,
        "content_id": part.content_id,
        "transfer_encoding": part.transfer_encoding,
        "attachment_size": len(part.content),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "attachment_human_size": human_size(len(part.content)),
        "download_path": f"{_message_path(row)}/attachments/{part.id}/download",
    }


def _download_disposition(filename: str) -> str:
    """RFC 6266 ``attachment`` with an ASCII fallback: no quotes or CR/LF reach the header."""
    fallback = _SAFE_FILENAME.sub("_", filename)[:200] or "attachment"
    value = f'attachment; filename="{fallback}"'
    return value + (f"; filename*=UTF-8''{quote(filename, safe='')}" if filename else "")


# --- routes: declared once, both path families and both resource names ---------------------
# The SDKs call ``/api/accounts/{account_id}/inboxes/…``; the sandbox spec names the same
# things ``/api/sandboxes/…`` without the account (api/families.py answers all four).

projects = Routes(router, "/projects")
project_inboxes = Routes(
    router, "/projects/{project_id}/inboxes", also=("/projects/{project_id}/sandboxes",)
)
inbox_routes = Routes(router, "/inboxes", also=("/sandboxes",))
INBOX = "/{inbox_id}"
MESSAGE = INBOX + "/messages/{message_id}"


@projects.get("", scope="read", summary="List projects and their inboxes")
async def list_projects(request: Request, caller: Acting) -> Response:
    services = services_of(request)
    views = await inboxes.list_projects(services, caller.account_id)
    return json_response([project_json(services, caller.principal, v) for v in views])


@projects.post("", scope="admin", summary="Create a project", openapi_extra=json_body(ProjectBody))
async def create_project(request: Request, caller: Acting) -> Response:
    services = services_of(request)
    section = await _section(request, "project")
    view = await inboxes.create_project(services, caller.account_id, section.get("name"))
    return json_response(project_json(services, caller.principal, view))


@projects.get("/{project_id}", scope="read", summary="Get a project")
async def get_project(project_id: Id, request: Request, caller: Acting) -> Response:
    services = services_of(request)
    view = await inboxes.get_project(services, caller.account_id, project_id)
    return json_response(project_json(services, caller.principal, view))


@projects.patch(
    "/{project_id}",
    scope="admin",
    summary="Rename a project",
    openapi_extra=json_body(ProjectBody),
)
async def update_project(project_id: Id, request: Request, caller: Acting) -> Response:
    services = services_of(request)
    name = (await _section(request, "project")).get("name")
    view = await inboxes.rename_project(services, caller.account_id, project_id, name)
    return json_response(project_json(services, caller.principal, view))


@projects.delete("/{project_id}", scope="admin", summary="Delete a project and its inboxes")
async def delete_project(project_id: Id, request: Request, caller: Acting) -> Response:
    gone = await inboxes.delete_project(services_of(request), caller.account_id, project_id)
    return json_response({"id": gone})


# --- inboxes ------------------------------------------------------------------------------


@inbox_routes.get("", scope="read", summary="List the account's inboxes")
async def list_inboxes(request: Request, caller: Acting) -> Response:
    services = services_of(request)
    views = await inboxes.list_inboxes(services, caller.account_id)
    return json_response([inbox_json(services, caller.principal, v) for v in views])


@project_inboxes.post(
    "", scope="admin", summary="Create an inbox", openapi_extra=json_body(InboxBody)
)
async def create_inbox(project_id: Id, request: Request, caller: Acting) -> Response:
    services = services_of(request)
    name = (await _section(request, "inbox", "sandbox")).get("name")
    view = await inboxes.create_inbox(services, caller.account_id, project_id, name)
    return json_response(inbox_json(services, caller.principal, view))


@inbox_routes.get(INBOX, scope="read", summary="Get an inbox")
async def get_inbox(inbox_id: Id, request: Request, caller: Acting) -> Response:
    services = services_of(request)
    view = await inboxes.get_inbox(services, caller.account_id, inbox_id)
    return json_response(inbox_json(services, caller.principal, view))


@inbox_routes.patch(
    INBOX,
    scope="admin",
    summary="Rename an inbox or change its email username",
    openapi_extra=json_body(InboxBody),
)
async def update_inbox(inbox_id: Id, request: Request, caller: Acting) -> Response:
    services = services_of(request)
    section = await _section(request, "inbox", "sandbox")
    view = await inboxes.update_inbox(services, caller.account_id, inbox_id, section)
    return json_response(inbox_json(services, caller.principal, view))


@inbox_routes.delete(INBOX, scope="admin", summary="Delete an inbox and its messages")
async def delete_inbox(inbox_id: Id, request: Request, caller: Acting) -> Response:
    services = services_of(request)
    view = await inboxes.delete_inbox(services, caller.account_id, inbox_id)
    return json_response(inbox_json(services, caller.principal, view))


# The five body-less PATCH actions share one shape: change the inbox, return it.
_ACTIONS = {
    "clean": (inboxes.clean_inbox, "Delete every message of an inbox"),
    "all_read": (inboxes.mark_all_read, "Mark every message of an inbox read"),
    "reset_credentials": (inboxes.reset_credentials, "New SMTP password for an inbox"),
    "toggle_email_username": (inboxes.toggle_email_username, "Turn the inbox address on/off"),
    "reset_email_username": (inboxes.reset_email_username, "New inbox address username"),
}


def _add_action(name: str) -> None:
    action, summary = _ACTIONS[name]

    async def endpoint(inbox_id: Id, request: Request, caller: Acting) -> Response:
        services = services_of(request)
        view = await action(services, caller.account_id, inbox_id)
        return json_response(inbox_json(services, caller.principal, view))

    inbox_routes.patch(f"{INBOX}/{name}", scope="admin", summary=summary, name=f"inbox_{name}")(
        endpoint
    )


for _name in _ACTIONS:
    _add_action(_name)


# --- messages -----------------------------------------------------------------------------


@inbox_routes.get(INBOX + "/messages", scope="read", summary="List an inbox's messages")
async def list_messages(
    inbox_id: Id,
    request: Request,
    caller: Acting,
    search: Annotated[str | None, Query(max_length=255)] = None,
    last_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    page: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    message_id: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Postroom: only the capture of this sent message (a message_id "
            "answered by /api/send or /api/batch).",
        ),
    ] = None,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=messages.MAX_WAIT_SECONDS,
            description="Postroom: seconds to wait for a message when the page would be "
            "empty (capture is asynchronous); at most 30.",
        ),
    ] = 0,
) -> Response:
    rows = await messages.list_messages(
        services_of(request),
        caller.account_id,
        inbox_id,
        search=search,
        last_id=last_id,
        page=page,
        message_id=message_id,
        wait=wait,
    )
    return json_response([message_json(services_of(request), row) for row in rows])


@inbox_routes.get(MESSAGE, scope="read", summary="Get a message")
async def get_message(inbox_id: Id, message_id: Id, request: Request, caller: Acting) -> Response:
    row = await messages.get_message(services_of(request), caller.account_id, inbox_id, message_id)
    return json_response(message_json(services_of(request), row))


@inbox_routes.patch(
    MESSAGE,
    scope="admin",
    summary="Mark a message read or unread",
    openapi_extra=json_body(MessageBody),
)
async def update_message(
    inbox_id: Id, message_id: Id, request: Request, caller: Acting
) -> Response:
    is_read = messages.parse_is_read((await _section(request, "message")).get("is_read"))
    row = await messages.set_read(
        services_of(request), caller.account_id, inbox_id, message_id, is_read
    )
    return json_response(message_json(services_of(request), row))


@inbox_routes.delete(MESSAGE, scope="admin", summary="Delete a message")
async def delete_message(
    inbox_id: Id, message_id: Id, request: Request, caller: Acting
) -> Response:
    row = await messages.delete_message(
        services_of(request), caller.account_id, inbox_id, message_id
    )
    return json_response(message_json(services_of(request), row))


# --- message parts ------------------------------------------------------------------------


async def _part(
    request: Request, caller: Caller, ids: tuple[int, int], extract: Callable[[bytes], T]
) -> tuple[dict[str, Any], T]:
    """The message row and a part of it, after the same checks as every other route."""
    inbox_id, message_id = ids
    services = services_of(request)
    return await messages.read_part(services, caller.account_id, inbox_id, message_id, extract)


@inbox_routes.get(MESSAGE + "/body.txt", scope="read", summary="The text body")
async def body_txt(inbox_id: Id, message_id: Id, request: Request, caller: Acting) -> Response:
    ids = (inbox_id, message_id)
    _, text = await _part(request, caller, ids, lambda raw: messages.body_text(raw, "plain"))
    return Response(text, media_type="text/plain", headers=NOSNIFF)


_HTML_HEADERS = {**NOSNIFF, "Content-Security-Policy": HTML_CSP, "X-Frame-Options": "SAMEORIGIN"}


@inbox_routes.get(MESSAGE + "/body.html", scope="read", summary="The HTML body, sandboxed")
async def body_html(inbox_id: Id, message_id: Id, request: Request, caller: Acting) -> Response:
    ids = (inbox_id, message_id)
    _, html = await _part(request, caller, ids, lambda raw: messages.body_text(raw, "html"))
    return Response(html, media_type="text/html", headers=_HTML_HEADERS)


@inbox_routes.get(
    MESSAGE + "/body.htmlsource", scope="read", summary="The HTML body's source, sandboxed"
)
async def body_htmlsource(
    inbox_id: Id, message_id: Id, request: Request, caller: Acting
) -> Response:
    # The spec serves the source as text/html: the same sandbox policy as body.html keeps a
    # browser that renders it from running anything or reaching anywhere.
    ids = (inbox_id, message_id)
    _, html = await _part(request, caller, ids, lambda raw: messages.body_text(raw, "html"))
    return Response(html, media_type="text/html", headers=_HTML_HEADERS)


@inbox_routes.get(MESSAGE + "/body.raw", scope="read", summary="The raw message, as text")
async def body_raw(inbox_id: Id, message_id: Id, request: Request, caller: Acting) -> Response:
    _, raw = await _part(request, caller, (inbox_id, message_id), bytes)
    return Response(raw, media_type="text/plain", headers=NOSNIFF)


@inbox_routes.get(MESSAGE + "/body.eml", scope="read", summary="The message as an .eml download")
async def body_eml(inbox_id: Id, message_id: Id, request: Request, caller: Acting) -> Response:
    _, raw = await _part(request, caller, (inbox_id, message_id), bytes)
    headers = {**NOSNIFF, "Content-Disposition": f'attachment; filename="{message_id}.eml"'}
    return Response(raw, media_type="message/rfc822", headers=headers)


@inbox_routes.get(MESSAGE + "/mail_headers", scope="read", summary="The headers, decoded")
async def mail_headers(inbox_id: Id, message_id: Id, request: Request, caller: Acting) -> Response:
    _, headers = await _part(request, caller, (inbox_id, message_id), messages.mail_headers)
    return json_response({"headers": headers})


# --- forward and analysis ------------------------------------------------------------------


@inbox_routes.post(
    MESSAGE + "/forward",
    # Forwarding sends the message's content elsewhere: it takes the account's admin
    # (read and send), so neither a send-only token (an app's) nor a viewer can use it to
    # read the sandbox or to send.
    scope="admin",
    summary="Forward a message to an address (through the installation's delivery)",
    openapi_extra=json_body(ForwardBody),
)
async def forward_message(
    inbox_id: Id, message_id: Id, request: Request, caller: Acting
) -> Response:
    email = forward.recipient(await read_json(request, BODY_LIMIT))
    client_ip = request.client.host if request.client else None
    ids = (inbox_id, message_id)
    await forward.forward(services_of(request), caller.account_id, ids, email, client_ip)
    return json_response({"message": forward.FORWARDED})


@inbox_routes.get(
    MESSAGE + "/spam_report", scope="read", summary="Spam score and rule hits (SpamAssassin)"
)
async def spam_report(inbox_id: Id, message_id: Id, request: Request, caller: Acting) -> Response:
    _, raw = await _part(request, caller, (inbox_id, message_id), bytes)
    result = await spam.score(services_of(request).settings.sandbox, raw)
    return json_response({"report": result.report()})


@inbox_routes.get(
    MESSAGE + "/analyze", scope="read", summary="HTML/CSS support by email client (caniemail)"
)
async def html_analysis(inbox_id: Id, message_id: Id, request: Request, caller: Acting) -> Response:
    def analyze(raw: bytes) -> dict[str, Any]:
        return htmlcheck.report(messages.body_text(raw, "html"))

    _, report = await _part(request, caller, (inbox_id, message_id), analyze)
    return json_response({"report": report})


# --- attachments --------------------------------------------------------------------------


@inbox_routes.get(MESSAGE + "/attachments", scope="read", summary="List a message's attachments")
async def list_attachments(
    inbox_id: Id,
    message_id: Id,
    request: Request,
    caller: Acting,
    attachment_type: Annotated[str | None, Query()] = None,
) -> Response:
    row, parts = await _part(request, caller, (inbox_id, message_id), messages.attachments)
    wanted = [p for p in parts if attachment_type in (None, "", p.disposition)]
    return json_response([attachment_json(row, p) for p in wanted])


@inbox_routes.get(
    MESSAGE + "/attachments/{attachment_id}", scope="read", summary="Get one attachment"
)
async def get_attachment(
    inbox_id: Id, message_id: Id, attachment_id: Id, request: Request, caller: Acting
) -> Response:
    ids = (inbox_id, message_id)
    row, part = await _part(
        request, caller, ids, lambda raw: messages.attachment(raw, attachment_id)
    )
    return json_response(attachment_json(row, part))


@inbox_routes.get(
    MESSAGE + "/attachments/{attachment_id}/download",
    scope="read",
    summary="Download an attachment",
)
async def download_attachment(
    inbox_id: Id, message_id: Id, attachment_id: Id, request: Request, caller: Acting
) -> Response:
    ids = (inbox_id, message_id)
    _, part = await _part(request, caller, ids, lambda raw: messages.attachment(raw, attachment_id))
    headers = {
        **NOSNIFF,
        "Content-Disposition": _download_disposition(part.filename),
        # Even if a browser renders it, the file gets no script and no same-origin access.
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    return Response(part.content, media_type=part.content_type, headers=headers)
