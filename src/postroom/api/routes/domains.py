"""Sending domains API (spec §4.4): CRUD, company info, DNS verification, DKIM rotation.

Two path families reach the same use cases (:mod:`postroom.services.domains`):

- ``/api/accounts/{account_id}/sending_domains[/{id}]``: what the SDKs call; request
  bodies are wrapped in ``sending_domain``. The Ruby SDK also calls
  ``…/sending_domains/{id}/company_info``.
- ``/api/domains[/{id}]``: the token-scoped alias of the newer docs (the token's own
  account; bodies wrapped in ``domain``). ``/api/domains/{id}/company_info`` is what the
  Python and Node SDKs call.

Either wrapper is accepted on either family. Postroom adds ``POST …/{id}/verify`` (check
DNS now) and ``POST …/{id}/rotate_dkim`` (publish a new key generation) to both.
Envelopes follow the contract exactly: the list is ``{"data": […]}``, one domain is flat,
delete is an empty 204, company info is ``{"data": {…}}``. GETs need the ``read`` scope,
everything else ``admin``; another tenant's domain is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from postroom.api.auth import acting_account, principal, services_of
from postroom.api.body import read_json
from postroom.api.docs import CompanyInfoBody, DomainBody, SetupInstructionsBody, json_body
from postroom.api.params import Id
from postroom.api.responses import json_response
from postroom.api.routes.sandbox import iso
from postroom.errors import ValidationFailed
from postroom.services import domains, notices
from postroom.services.auth import Principal
from postroom.services.domains import FLAGS, DomainView, ShownRecord

router = APIRouter(tags=["sending domains"])

Who = Annotated[Principal, Depends(principal)]

BODY_LIMIT = 64 * 1024  # flags, a name, company details
ACCOUNT = "/api/accounts/{account_id}/sending_domains"
ALIAS = "/api/domains"
SD, D = "sending_domain", "domain"  # the two body wrappers
DOMAIN = json_body(DomainBody)
SETUP = json_body(SetupInstructionsBody)
COMPANY = json_body(CompanyInfoBody)


# --- helpers ------------------------------------------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    body = await read_json(request, BODY_LIMIT)
    if not isinstance(body, dict):
        raise ValidationFailed(["request body must be a JSON object"])
    return body


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


# --- shared handlers (account_id None: the token's account) -------------------------------


async def _list(request: Request, who: Principal, account_id: int | None) -> Response:
    target = acting_account(who, account_id, "read")
    views = await domains.list_domains(services_of(request), target)
    return json_response({"data": [domain_json(v, who) for v in views]})


async def _create(request: Request, who: Principal, account_id: int | None, wrap: str) -> Response:
    target = acting_account(who, account_id, "admin")
    section = await _section(request, wrap, SD if wrap == D else D)
    view = await domains.create(services_of(request), target, section.get("domain_name"))
    return json_response(domain_json(view, who))


async def _get(
    request: Request, who: Principal, account_id: int | None, domain_id: int
) -> Response:
    target = acting_account(who, account_id, "read")
    view = await domains.get(services_of(request), target, domain_id)
    return json_response(domain_json(view, who))


async def _update(
    request: Request, who: Principal, account_id: int | None, domain_id: int, wrap: str
) -> Response:
    target = acting_account(who, account_id, "admin")
    section = await _section(request, wrap, SD if wrap == D else D)
    view = await domains.update(services_of(request), target, domain_id, section)
    return json_response(domain_json(view, who))


async def _delete(
    request: Request, who: Principal, account_id: int | None, domain_id: int
) -> Response:
    target = acting_account(who, account_id, "admin")
    await domains.delete(services_of(request), target, domain_id)
    return Response(status_code=204)


async def _setup(
    request: Request, who: Principal, account_id: int | None, domain_id: int
) -> Response:
    target = acting_account(who, account_id, "admin")
    body = await _body(request)
    await notices.send_setup_instructions(
        services_of(request), target, domain_id, body.get("email")
    )
    return Response(status_code=204)


async def _company(
    request: Request, who: Principal, account_id: int | None, domain_id: int, method: str
) -> Response:
    services = services_of(request)
    if method == "GET":
        target = acting_account(who, account_id, "read")
        info = await domains.get_company_info(services, target, domain_id)
    else:
        target = acting_account(who, account_id, "admin")
        section = await _section(request, "company_info")
        replace = method == "POST"
        info = await domains.set_company_info(services, target, domain_id, section, replace=replace)
    return json_response({"data": info})


async def _verify(
    request: Request, who: Principal, account_id: int | None, domain_id: int
) -> Response:
    target = acting_account(who, account_id, "admin")
    view = await domains.verify(services_of(request), target, domain_id)
    return json_response(domain_json(view, who))


async def _rotate(
    request: Request, who: Principal, account_id: int | None, domain_id: int
) -> Response:
    target = acting_account(who, account_id, "admin")
    view = await domains.rotate(services_of(request), target, domain_id)
    return json_response(domain_json(view, who))


# --- /api/accounts/{account_id}/sending_domains (the SDKs' paths) ---------------------------


@router.get(ACCOUNT, summary="List sending domains")
async def list_sending_domains(account_id: Id, request: Request, who: Who) -> Response:
    return await _list(request, who, account_id)


@router.post(ACCOUNT, summary="Create a sending domain", openapi_extra=DOMAIN)
async def create_sending_domain(account_id: Id, request: Request, who: Who) -> Response:
    return await _create(request, who, account_id, SD)


@router.get(ACCOUNT + "/{domain_id}", summary="Get a sending domain")
async def get_sending_domain(account_id: Id, domain_id: Id, request: Request, who: Who) -> Response:
    return await _get(request, who, account_id, domain_id)


@router.patch(
    ACCOUNT + "/{domain_id}", summary="Update a sending domain's settings", openapi_extra=DOMAIN
)
async def update_sending_domain(
    account_id: Id, domain_id: Id, request: Request, who: Who
) -> Response:
    return await _update(request, who, account_id, domain_id, SD)


@router.delete(ACCOUNT + "/{domain_id}", summary="Delete a sending domain", status_code=204)
async def delete_sending_domain(
    account_id: Id, domain_id: Id, request: Request, who: Who
) -> Response:
    return await _delete(request, who, account_id, domain_id)


@router.post(
    ACCOUNT + "/{domain_id}/send_setup_instructions",
    summary="Mail the DNS setup instructions",
    status_code=204,
    openapi_extra=SETUP,
)
async def send_setup_instructions(
    account_id: Id, domain_id: Id, request: Request, who: Who
) -> Response:
    return await _setup(request, who, account_id, domain_id)


@router.get(ACCOUNT + "/{domain_id}/company_info", summary="Get company info")
async def get_company_info(account_id: Id, domain_id: Id, request: Request, who: Who) -> Response:
    return await _company(request, who, account_id, domain_id, "GET")


@router.post(
    ACCOUNT + "/{domain_id}/company_info", summary="Set company info", openapi_extra=COMPANY
)
async def create_company_info(
    account_id: Id, domain_id: Id, request: Request, who: Who
) -> Response:
    return await _company(request, who, account_id, domain_id, "POST")


@router.patch(
    ACCOUNT + "/{domain_id}/company_info", summary="Update company info", openapi_extra=COMPANY
)
async def update_company_info(
    account_id: Id, domain_id: Id, request: Request, who: Who
) -> Response:
    return await _company(request, who, account_id, domain_id, "PATCH")


@router.post(ACCOUNT + "/{domain_id}/verify", summary="Check DNS now (Postroom)")
async def verify_sending_domain(
    account_id: Id, domain_id: Id, request: Request, who: Who
) -> Response:
    return await _verify(request, who, account_id, domain_id)


@router.post(ACCOUNT + "/{domain_id}/rotate_dkim", summary="Publish new DKIM keys (Postroom)")
async def rotate_sending_domain_dkim(
    account_id: Id, domain_id: Id, request: Request, who: Who
) -> Response:
    return await _rotate(request, who, account_id, domain_id)


# --- /api/domains (token-scoped alias; company_info is what PY/NODE call) -------------------


@router.get(ALIAS, summary="List domains (token's account)")
async def list_domains(request: Request, who: Who) -> Response:
    return await _list(request, who, None)


@router.post(ALIAS, summary="Create a domain (token's account)", openapi_extra=DOMAIN)
async def create_domain(request: Request, who: Who) -> Response:
    return await _create(request, who, None, D)


@router.get(ALIAS + "/{domain_id}", summary="Get a domain (token's account)")
async def get_domain(domain_id: Id, request: Request, who: Who) -> Response:
    return await _get(request, who, None, domain_id)


@router.patch(
    ALIAS + "/{domain_id}", summary="Update a domain (token's account)", openapi_extra=DOMAIN
)
async def update_domain(domain_id: Id, request: Request, who: Who) -> Response:
    return await _update(request, who, None, domain_id, D)


@router.delete(ALIAS + "/{domain_id}", summary="Delete a domain (token's account)", status_code=204)
async def delete_domain(domain_id: Id, request: Request, who: Who) -> Response:
    return await _delete(request, who, None, domain_id)


@router.post(
    ALIAS + "/{domain_id}/send_setup_instructions",
    summary="Send DNS setup instructions (token's account)",
    status_code=204,
    openapi_extra=SETUP,
)
async def domain_setup_instructions(domain_id: Id, request: Request, who: Who) -> Response:
    return await _setup(request, who, None, domain_id)


@router.get(ALIAS + "/{domain_id}/company_info", summary="Get company info (token's account)")
async def get_domain_company_info(domain_id: Id, request: Request, who: Who) -> Response:
    return await _company(request, who, None, domain_id, "GET")


@router.post(
    ALIAS + "/{domain_id}/company_info",
    summary="Set company info (token's account)",
    openapi_extra=COMPANY,
)
async def create_domain_company_info(domain_id: Id, request: Request, who: Who) -> Response:
    return await _company(request, who, None, domain_id, "POST")


@router.patch(
    ALIAS + "/{domain_id}/company_info",
    summary="Update company info (token's account)",
    openapi_extra=COMPANY,
)
async def update_domain_company_info(domain_id: Id, request: Request, who: Who) -> Response:
    return await _company(request, who, None, domain_id, "PATCH")


@router.post(ALIAS + "/{domain_id}/verify", summary="Check DNS now (Postroom, token's account)")
async def verify_domain(domain_id: Id, request: Request, who: Who) -> Response:
    return await _verify(request, who, None, domain_id)


@router.post(
    ALIAS + "/{domain_id}/rotate_dkim", summary="Publish new DKIM keys (Postroom, token's account)"
)
async def rotate_domain_dkim(domain_id: Id, request: Request, who: Who) -> Response:
    return await _rotate(request, who, None, domain_id)
