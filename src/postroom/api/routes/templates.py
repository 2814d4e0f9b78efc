"""Email templates API (spec §4.1), its paginated variant, and Postroom's preview.

Each operation is declared once (:class:`~postroom.api.families.Routes`) and answers in
both path families; they reach :mod:`postroom.services.templates`:

- ``/api/accounts/{account_id}/email_templates[/{id}]``: what every SDK calls; bodies
  wrapped in ``email_template``; the list is a bare array, one template is flat, create
  answers 201 and delete an empty 204.
- ``/api/email_templates[/{id}]``: the token-scoped alias of the newer docs (same shapes).
- ``/api/accounts/{account_id}/templates[/{id}]`` (and ``/api/templates``): the Python
  SDK's paginated variant: flat request bodies, ``{"data": …}`` responses,
  ``?per_page=&token=`` pages.

Postroom adds ``POST …/email_templates/{id}/preview`` (render with given
``template_variables``, optionally an older ``version``) and ``GET …/{id}/versions``
(oldest first, paged: ``?per_page=`` up to 50, ``?after_version=``).
GETs and preview need the ``read`` scope, changes ``admin``; another tenant's template
is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from postroom.api.auth import services_of
from postroom.api.body import read_json_object
from postroom.api.docs import PreviewBody, TemplateBody, TemplateFields, json_body
from postroom.api.families import Acting, Routes
from postroom.api.params import Id
from postroom.api.responses import json_response, token_pagination
from postroom.api.routes.sandbox import iso
from postroom.errors import ValidationFailed
from postroom.services import templates

router = APIRouter(tags=["email templates"])

WRAPPER = "email_template"
PER_PAGE_DEFAULT, PER_PAGE_MAX = 25, 100
WRAPPED = json_body(TemplateBody)
FLAT = json_body(TemplateFields)
PREVIEW = json_body(PreviewBody, required=False)


# --- helpers ------------------------------------------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    # Two bodies of up to max_body_chars characters, up to 3 bytes each in UTF-8.
    limit = 6 * services_of(request).settings.templates.max_body_chars + 1024 * 1024
    return await read_json_object(request, limit)


async def _section(request: Request) -> dict[str, Any]:
    """The ``email_template`` object (Rails' require), or the flat body when unwrapped."""
    body = await _body(request)
    section = body.get(WRAPPER)
    if isinstance(section, dict):
        return section
    if WRAPPER in body or not body:
        raise ValidationFailed([f"param is missing or the value is empty: {WRAPPER}"])
    return body


async def _optional_object(request: Request, limit: int) -> dict[str, Any]:
    """A JSON object body; an empty body is an empty object (preview without variables)."""
    headers = request.headers
    if headers.get("content-length") == "0" or not (
        headers.get("content-length") or headers.get("transfer-encoding")
    ):
        return {}
    return await read_json_object(request, limit)


_CONTENT = ("name", "category", "subject", "body_html", "body_text")


def version_json(row: dict[str, Any]) -> dict[str, Any]:
    """One saved version: its number, content, and when it was saved."""
    return {
        "version": row["version"],
        **{name: row[name] for name in _CONTENT},
        "created_at": iso(row["created_at"]),
    }


def template_json(row: dict[str, Any]) -> dict[str, Any]:
    """A Template as spec §4.1 (and the SDKs' ``EmailTemplate``) has it, plus ``version``."""
    return {
        "id": row["id"],
        "uuid": row["uuid"],
        **version_json(row),
        "updated_at": iso(row["updated_at"]),
    }


class VersionPage(BaseModel):
    """``?per_page=&after_version=``: a page of versions, oldest first."""

    per_page: int = Field(templates.VERSIONS_PAGE_MAX, ge=1, le=templates.VERSIONS_PAGE_MAX)
    after_version: int = Field(0, ge=0, le=2**31 - 1)


Versions = Annotated[VersionPage, Query()]


# --- /email_templates: declared once, both path families (api/families.py) ---------------

routes = Routes(router, "/email_templates")
paged = Routes(router, "/templates")
ONE = "/{template_id}"


@routes.get("", scope="read", summary="List email templates")
async def list_email_templates(request: Request, caller: Acting) -> Response:
    rows = await templates.list_templates(services_of(request), caller.account_id)
    return json_response([template_json(row) for row in rows])


@routes.post(
    "", scope="admin", summary="Create an email template", status_code=201, openapi_extra=WRAPPED
)
async def create_email_template(request: Request, caller: Acting) -> Response:
    section = await _section(request)
    row = await templates.create(services_of(request), caller.account_id, section)
    return json_response(template_json(row), 201)


@routes.get(ONE, scope="read", summary="Get an email template")
async def get_email_template(template_id: Id, request: Request, caller: Acting) -> Response:
    row = await templates.get(services_of(request), caller.account_id, template_id)
    return json_response(template_json(row))


@routes.patch(ONE, scope="admin", summary="Update an email template", openapi_extra=WRAPPED)
async def update_email_template(template_id: Id, request: Request, caller: Acting) -> Response:
    section = await _section(request)
    row = await templates.update(services_of(request), caller.account_id, template_id, section)
    return json_response(template_json(row))


@routes.delete(ONE, scope="admin", summary="Delete an email template", status_code=204)
async def delete_email_template(template_id: Id, request: Request, caller: Acting) -> Response:
    await templates.delete(services_of(request), caller.account_id, template_id)
    return Response(status_code=204)


@routes.post(
    ONE + "/preview", scope="read", summary="Render a template (Postroom)", openapi_extra=PREVIEW
)
async def preview_email_template(template_id: Id, request: Request, caller: Acting) -> Response:
    services = services_of(request)
    body = await _optional_object(request, services.settings.limits.max_message_bytes)
    variables, version = body.get("template_variables"), body.get("version")
    if variables is not None and not isinstance(variables, dict):
        raise ValidationFailed(["'template_variables' must be an object"])
    if version is not None and (type(version) is not int or version < 1):
        raise ValidationFailed(["'version' must be a positive integer"])
    shown = await templates.preview(services, caller.account_id, template_id, variables, version)
    rendered = shown.rendered
    return json_response(
        {
            "id": shown.template["id"],
            "uuid": shown.template["uuid"],
            "version": shown.version,
            "subject": rendered.subject,
            "html": rendered.html,
            "text": rendered.text,
            "category": rendered.category,
        }
    )


@routes.get(ONE + "/versions", scope="read", summary="List a template's versions (Postroom)")
async def list_email_template_versions(
    template_id: Id, request: Request, caller: Acting, page: Versions
) -> Response:
    rows = await templates.versions(
        services_of(request),
        caller.account_id,
        template_id,
        after=page.after_version,
        limit=page.per_page,
    )
    return json_response([version_json(row) for row in rows])


# --- /templates (the Python SDK's paginated variant), both path families ------------------


@paged.get("", scope="read", summary="List email templates, one page at a time")
async def list_paged_templates(
    request: Request,
    caller: Acting,
    per_page: Annotated[int, Query(ge=1, le=1_000_000)] = PER_PAGE_DEFAULT,
    token: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    per_page = min(per_page, PER_PAGE_MAX)
    rows, more = await templates.page(services_of(request), caller.account_id, token, per_page)
    pagination = token_pagination(request, token, per_page, more)
    return json_response({"data": [template_json(r) for r in rows], "pagination": pagination})


@paged.post(
    "",
    scope="admin",
    summary="Create an email template (flat body)",
    status_code=201,
    openapi_extra=FLAT,
)
async def create_paged_template(request: Request, caller: Acting) -> Response:
    section = await _section(request)
    row = await templates.create(services_of(request), caller.account_id, section)
    return json_response({"data": template_json(row)}, 201)


@paged.get(ONE, scope="read", summary="Get an email template (wrapped in data)")
async def get_paged_template(template_id: Id, request: Request, caller: Acting) -> Response:
    row = await templates.get(services_of(request), caller.account_id, template_id)
    return json_response({"data": template_json(row)})


@paged.patch(ONE, scope="admin", summary="Update an email template (flat body)", openapi_extra=FLAT)
async def update_paged_template(template_id: Id, request: Request, caller: Acting) -> Response:
    section = await _section(request)
    row = await templates.update(services_of(request), caller.account_id, template_id, section)
    return json_response({"data": template_json(row)})


@paged.delete(ONE, scope="admin", summary="Delete an email template", status_code=204)
async def delete_paged_template(template_id: Id, request: Request, caller: Acting) -> Response:
    await templates.delete(services_of(request), caller.account_id, template_id)
    return Response(status_code=204)
