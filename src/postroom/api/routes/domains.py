"""Sending domains API (spec §4.4): CRUD, company info, DNS verification, DKIM rotation.

Declared once (:class:`~postroom.api.families.Routes`) under both names in both path
families; the use cases are :mod:`postroom.services.domains`:

- ``/api/accounts/{account_id}/sending_domains[/{id}]``: what the SDKs call; request
  bodies are wrapped in ``sending_domain``. The Ruby SDK also calls
  ``…/sending_domains/{id}/company_info``.
- ``/api/domains[/{id}]``: the token-scoped alias of the newer docs (the token's own
  account; bodies wrapped in ``domain``). ``/api/domains/{id}/company_info`` is what the
  Python and Node SDKs call. (``/api/sending_domains`` and
  ``/api/accounts/{account_id}/domains`` answer too.)

Either wrapper is accepted on either family. Postroom adds ``POST …/{id}/verify`` (check
DNS now) and ``POST …/{id}/rotate_dkim`` (publish a new key generation) to both.
Envelopes follow the contract exactly: the list is ``{"data": […]}``, one domain is flat,
delete is an empty 204, company info is ``{"data": {…}}``. GETs need the ``read`` scope,
everything else ``admin``; another tenant's domain is a 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from postroom.api.auth import services_of
from postroom.api.body import read_json_object
from postroom.api.docs import CompanyInfoBody, DomainBody, SetupInstructionsBody, json_body
from postroom.api.families import Acting, Caller, Routes
from postroom.api.params import Id
from postroom.api.responses import json_response
from postroom.api.routes.sandbox import iso
from postroom.errors import ValidationFailed
from postroom.services import domains, notices
from postroom.services.auth import Principal
from postroom.services.domains import FLAGS, DomainView, ShownRecord

router = APIRouter(tags=["sending domains"])

BODY_LIMIT = 64 * 1024  # flags, a name, company details
SD, D = "sending_domain", "domain"  # the two body wrappers
DOMAIN = json_body(DomainBody)
SETUP = json_body(SetupInstructionsBody)
COMPANY = json_body(CompanyInfoBody)


# --- helpers ------------------------------------------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    return await read_json_object(request, BODY_LIMIT)


async def _section(request: Request, *keys: str) -> dict[str, Any]:
    """The first of the wrapper objects ``keys`` present in the body (Rails' require)."""
    body = await _body(request)
    for key in keys:
        section = body.get(key)
        if isinstance(section, dict):
            return section
    raise ValidationFailed([f"param is missing or the value is empty: {keys[0]}"])


def record_json(shown: ShownRecord) -> dict[str, Any]:
    record = shown.record
    return {
        "key": shown.key,
        "domain": record.name,
        "type": record.type.value,
        "value": record.value,
        "status": shown.status.value,
        "name": record.relative_name,
    }


def domain_json(view: DomainView, who: Principal) -> dict[str, Any]:
    """A Domain as spec §4.4 and the SDKs' ``SendingDomain`` model have it."""
    row = view.row
    admin = "admin" in who.scopes
    return {
        "id": row["id"],
        "domain_name": row["domain_name"],
        "demo": False,
        "compliance_status": view.compliance_status,
        "dns_verified": view.verified,
        "dns_verified_at": iso(row["dns_verified_at"]),
        "dns_records": [record_json(shown) for shown in view.records],
        **{flag: bool(row[flag]) for flag in FLAGS},
        "alert_recipient_email": row["alert_recipient_email"],
        "inbound_verified": False,  # Postroom has no inbound routing for domains yet
        "permissions": {"can_read": True, "can_update": admin, "can_destroy": admin},
        # Postroom's addition: when DNS was last asked (null before the first check).
        "dns_checked_at": iso(row["dns_checked_at"]),
    }


# --- routes: declared once, both path families and both names (api/families.py) ----------

routes = Routes(router, "/sending_domains", also=("/domains",))
ONE = "/{domain_id}"


def _wrappers(request: Request) -> tuple[str, str]:
    # Either wrapper is taken on either path; the path's own name is looked for first.
    return (SD, D) if "/sending_domains" in request.url.path else (D, SD)


@routes.get("", scope="read", summary="List sending domains")
async def list_domains(request: Request, caller: Acting) -> Response:
    views = await domains.list_domains(services_of(request), caller.account_id)
    return json_response({"data": [domain_json(v, caller.principal) for v in views]})


@routes.post("", scope="admin", summary="Create a sending domain", openapi_extra=DOMAIN)
async def create_domain(request: Request, caller: Acting) -> Response:
    section = await _section(request, *_wrappers(request))
    name = section.get("domain_name")
    view = await domains.create(services_of(request), caller.account_id, name)
    return json_response(domain_json(view, caller.principal))


@routes.get(ONE, scope="read", summary="Get a sending domain")
async def get_domain(domain_id: Id, request: Request, caller: Acting) -> Response:
    view = await domains.get(services_of(request), caller.account_id, domain_id)
    return json_response(domain_json(view, caller.principal))


@routes.patch(
    ONE, scope="admin", summary="Update a sending domain's settings", openapi_extra=DOMAIN
)
async def update_domain(domain_id: Id, request: Request, caller: Acting) -> Response:
    section = await _section(request, *_wrappers(request))
    view = await domains.update(services_of(request), caller.account_id, domain_id, section)
    return json_response(domain_json(view, caller.principal))


@routes.delete(ONE, scope="admin", summary="Delete a sending domain", status_code=204)
async def delete_domain(domain_id: Id, request: Request, caller: Acting) -> Response:
    await domains.delete(services_of(request), caller.account_id, domain_id)
    return Response(status_code=204)


@routes.post(
    ONE + "/send_setup_instructions",
    scope="admin",
    summary="Mail the DNS setup instructions",
    status_code=204,
    openapi_extra=SETUP,
)
async def send_setup_instructions(domain_id: Id, request: Request, caller: Acting) -> Response:
    email = (await _body(request)).get("email")
    await notices.send_setup_instructions(services_of(request), caller.account_id, domain_id, email)
    return Response(status_code=204)


@routes.get(ONE + "/company_info", scope="read", summary="Get company info")
async def get_company_info(domain_id: Id, request: Request, caller: Acting) -> Response:
    info = await domains.get_company_info(services_of(request), caller.account_id, domain_id)
    return json_response({"data": info})


async def _set_company(request: Request, caller: Caller, domain_id: int, replace: bool) -> Response:
    section = await _section(request, "company_info")
    info = await domains.set_company_info(
        services_of(request), caller.account_id, domain_id, section, replace=replace
    )
    return json_response({"data": info})


@routes.post(
    ONE + "/company_info", scope="admin", summary="Set company info", openapi_extra=COMPANY
)
async def create_company_info(domain_id: Id, request: Request, caller: Acting) -> Response:
    return await _set_company(request, caller, domain_id, replace=True)


@routes.patch(
    ONE + "/company_info", scope="admin", summary="Update company info", openapi_extra=COMPANY
)
async def update_company_info(domain_id: Id, request: Request, caller: Acting) -> Response:
    return await _set_company(request, caller, domain_id, replace=False)


@routes.post(ONE + "/verify", scope="admin", summary="Check DNS now (Postroom)")
async def verify_domain(domain_id: Id, request: Request, caller: Acting) -> Response:
    view = await domains.verify(services_of(request), caller.account_id, domain_id)
    return json_response(domain_json(view, caller.principal))


@routes.post(ONE + "/rotate_dkim", scope="admin", summary="Publish new DKIM keys (Postroom)")
async def rotate_domain_dkim(domain_id: Id, request: Request, caller: Acting) -> Response:
    view = await domains.rotate(services_of(request), caller.account_id, domain_id)
    return json_response(domain_json(view, caller.principal))
