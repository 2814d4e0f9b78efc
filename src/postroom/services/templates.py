"""Email templates (spec §4.1): CRUD, versions, preview, and the lookup sends use.

Every lookup is scoped to the caller's account: another tenant's template is NotFound
here and "not found" to a send. A template's sources are compiled when it is saved, so
a template with broken Handlebars is refused (422) instead of failing at send time.

Each save that changes a template's content makes a new *version*; every version is kept
(``email_template_versions``) and each message records the id and version it was
rendered from. Sends reuse compiled templates from :meth:`Services.get_template_cache`
for ``templates.cache_seconds``; changes made through this process drop the entry at
once, other processes see them within that time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from postroom.config import TemplateSettings
from postroom.domain.emailtemplates import (
    CompiledEmailTemplate,
    Rendered,
    RenderOptions,
    compile_email_template,
)
from postroom.domain.handlebars import RenderLimits, TemplateError, compile_template
from postroom.domain.headers import is_header_text
from postroom.errors import Conflict, NotFound
from postroom.services import Services
from postroom.storage.repos import templates as repo

TEXT_MAX = 255
VERSIONS_PAGE_MAX = 50  # versions listed per request (?per_page=, ?after_version=)
_REQUIRED = ("name", "subject", "category")
_BODIES = ("body_html", "body_text")


@dataclass(frozen=True, slots=True)
class Preview:
    """A template rendered with given variables, and the version it came from."""

    template: dict[str, Any]
    version: int
    rendered: Rendered


def render_options(settings: TemplateSettings) -> RenderOptions:
    limits = RenderLimits(settings.max_render_chars, settings.max_render_steps)
    return RenderOptions(limits, settings.inline_css, settings.text_from_html)


# --- validation -------------------------------------------------------------------------


def _field_errors(name: str, value: object, settings: TemplateSettings) -> list[str]:
    """Rails-style messages (what the SDKs show) for one field of a create or update."""
    if name in _REQUIRED:
        if not isinstance(value, str) or not value.strip():
            return ["can't be blank"]
        if len(value) > TEXT_MAX:
            return [f"is too long (maximum is {TEXT_MAX} characters)"]
        if name != "name" and not is_header_text(value):
            return ["contains invalid characters"]
    elif value is not None:
        if not isinstance(value, str):
            return ["must be a string"]
        if len(value) > settings.max_body_chars:
            return [f"is too long (maximum is {settings.max_body_chars} characters)"]
    if name in ("subject", *_BODIES) and isinstance(value, str):
        try:
            compile_template(value)
        except TemplateError as exc:
            return [f"has invalid Handlebars syntax: {exc}"]
    return []


def clean_fields(
    section: Mapping[str, Any], settings: TemplateSettings, *, partial: bool
) -> dict[str, Any]:
    """The content fields of a request, validated; raises Conflict (422) with every error.

    On create (``partial`` False) name, subject and category are required; on update only
    the fields present are checked and returned.
    """
    names = [n for n in (*_REQUIRED, *_BODIES) if not partial or n in section]
    errors = {n: found for n in names if (found := _field_errors(n, section.get(n), settings))}
    if errors:
        raise Conflict(errors)
    values = {n: section.get(n) for n in names}
    for name in _BODIES:
        if name in values and values[name] == "":
            values[name] = None  # an empty body is no body
    return values


# --- reading ----------------------------------------------------------------------------


def _require(conn: Connection, account_id: int, template_id: int) -> dict[str, Any]:
    row = repo.get(conn, account_id, template_id)
    if row is None:
        raise NotFound("template")
    return row


async def list_templates(services: Services, account_id: int) -> list[dict[str, Any]]:
    return await services.db.read(lambda conn: repo.list_page(conn, account_id))


async def page(
    services: Services, account_id: int, number: int, per_page: int
) -> tuple[list[dict[str, Any]], bool]:
    """Page ``number`` (from 1) of ``per_page`` templates, and whether more follow."""

    def run(conn: Connection) -> list[dict[str, Any]]:
        offset = (number - 1) * per_page
        return repo.list_page(conn, account_id, offset=offset, limit=per_page + 1)

    rows = await services.db.read(run)
    return rows[:per_page], len(rows) > per_page


async def get(services: Services, account_id: int, template_id: int) -> dict[str, Any]:
    return await services.db.read(lambda conn: _require(conn, account_id, template_id))


async def versions(
    services: Services,
    account_id: int,
    template_id: int,
    *,
    after: int = 0,
    limit: int = VERSIONS_PAGE_MAX,
) -> list[dict[str, Any]]:
    """One page of a template's versions, oldest first, after version ``after``.

    Paged because every save keeps a version, and each may hold two bodies of up to
    ``max_body_chars``: all of them at once is an unbounded read.
    """

    def run(conn: Connection) -> list[dict[str, Any]]:
        _require(conn, account_id, template_id)
        return repo.versions(conn, template_id, after=after, limit=min(limit, VERSIONS_PAGE_MAX))

    return await services.db.read(run)


# --- writing ----------------------------------------------------------------------------


async def create(services: Services, account_id: int, section: Mapping[str, Any]) -> dict[str, Any]:
    settings = services.settings.templates
    # Compiling a large template takes a while: off the event loop.
    values = await asyncio.to_thread(clean_fields, section, settings, partial=False)
    now = services.clock.now()
    row = {**values, "account_id": account_id, "uuid": services.ids.message_id()}
    row.update(created_at=now, updated_at=now)

    def run(conn: Connection) -> dict[str, Any]:
        if repo.count(conn, account_id) >= settings.max_per_account:
            raise Conflict({"base": [f"Templates limit reached ({settings.max_per_account})"]})
        return _require(conn, account_id, repo.insert(conn, row))

    return await services.db.write(run)


async def update(
    services: Services, account_id: int, template_id: int, section: Mapping[str, Any]
) -> dict[str, Any]:
    """Apply the fields given; a change of content makes a new version."""
    settings = services.settings.templates
    changes = await asyncio.to_thread(clean_fields, section, settings, partial=True)
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, Any]:
        current = _require(conn, account_id, template_id)
        content = {key: current[key] for key in repo.CONTENT}
        if all(content[key] == value for key, value in changes.items()):
            return current
        repo.update_content(conn, template_id, {**content, **changes, "updated_at": now})
        return _require(conn, account_id, template_id)

    row = await services.db.write(run)
    services.forget("templates", (account_id, str(row["uuid"])))
    return row


async def delete(services: Services, account_id: int, template_id: int) -> None:
    def run(conn: Connection) -> str:
        uuid = str(_require(conn, account_id, template_id)["uuid"])
        repo.delete_template(conn, template_id)
        return uuid

    uuid = await services.db.write(run)
    services.forget("templates", (account_id, uuid))


# --- rendering --------------------------------------------------------------------------


def _compile(row: Mapping[str, Any], version: int) -> CompiledEmailTemplate:
    return compile_email_template(
        id=int(row.get("template_id") or row["id"]),
        uuid=str(row.get("uuid", "")),
        version=version,
        category=row["category"],
        subject=row["subject"],
        body_html=row["body_html"],
        body_text=row["body_text"],
    )


async def preview(
    services: Services,
    account_id: int,
    template_id: int,
    variables: dict[str, Any] | None,
    version: int | None = None,
) -> Preview:
    """Render the template (or one of its versions) with ``variables``.

    Raises NotFound, or Conflict when the variables make rendering fail (a limit).
    """

    def run(conn: Connection) -> tuple[dict[str, Any], dict[str, Any]]:
        template = _require(conn, account_id, template_id)
        if version is None:
            return template, template
        # One row, not every version's bodies.
        found = repo.versions(conn, template_id, after=version - 1, limit=1)
        chosen = [v for v in found if v["version"] == version]
        if not chosen:
            raise NotFound("template version")
        return template, {**chosen[0], "uuid": template["uuid"]}

    template, source = await services.db.read(run)
    number = int(source["version"])
    try:
        rendered = _compile(source, number).render(
            variables, render_options(services.settings.templates)
        )
    except TemplateError as exc:
        raise Conflict({"base": [str(exc)]}) from exc
    return Preview(template, number, rendered)


Resolved = dict[str, CompiledEmailTemplate | TemplateError]


async def resolve(services: Services, account_id: int, uuids: Iterable[str]) -> Resolved:
    """The account's compiled templates for ``uuids`` (absent: no such template).

    A stored template that no longer compiles maps to its error, so the send reports it.
    """
    cache = services.get_template_cache()
    found: Resolved = {}
    missing = []
    for uuid in set(uuids):
        compiled = cache.get((account_id, uuid))
        if compiled is None:
            missing.append(uuid)
        else:
            found[uuid] = compiled
    if missing:
        # Read and compile in a worker thread: a large template takes a while to parse.
        loaded = await services.db.read(lambda conn: _load(conn, account_id, missing))
        for uuid, item in loaded.items():
            if isinstance(item, CompiledEmailTemplate):
                cache.put((account_id, uuid), item)
            found[uuid] = item
    return found


def _load(conn: Connection, account_id: int, uuids: list[str]) -> Resolved:
    loaded: Resolved = {}
    for uuid in uuids:
        row = repo.get_by_uuid(conn, account_id, uuid)
        if row is None:
            continue
        try:
            loaded[uuid] = _compile(row, int(row["version"]))
        except TemplateError as exc:
            loaded[uuid] = exc
    return loaded
