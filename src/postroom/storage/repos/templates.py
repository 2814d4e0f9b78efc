"""Email templates and their versions. Every query is scoped to one account."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection

from postroom.storage.repos import insert_id
from postroom.storage.tables import email_template_versions, email_templates

#: The columns a version copies from its template.
CONTENT = ("name", "category", "subject", "body_html", "body_text")


def count(conn: Connection, account_id: int) -> int:
    query = select(func.count()).where(email_templates.c.account_id == account_id)
    return int(conn.execute(query).scalar_one())


def list_page(
    conn: Connection, account_id: int, *, offset: int = 0, limit: int | None = None
) -> list[dict[str, Any]]:
    """The account's templates, oldest first; one page when ``limit`` is given."""
    query = (
        select(email_templates)
        .where(email_templates.c.account_id == account_id)
        .order_by(email_templates.c.id)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    return [dict(row) for row in conn.execute(query).mappings()]


def get(conn: Connection, account_id: int, template_id: int) -> dict[str, Any] | None:
    query = select(email_templates).where(
        email_templates.c.id == template_id, email_templates.c.account_id == account_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def get_by_uuid(conn: Connection, account_id: int, uuid: str) -> dict[str, Any] | None:
    query = select(email_templates).where(
        email_templates.c.uuid == uuid, email_templates.c.account_id == account_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def insert(conn: Connection, values: dict[str, Any]) -> int:
    """Insert a template at version 1 together with that version's record."""
    template_id = insert_id(conn, email_templates, {**values, "version": 1})
    _insert_version(conn, template_id, 1, values, values["created_at"])
    return template_id


def update_content(conn: Connection, template_id: int, values: dict[str, Any]) -> int:
    """Store ``values`` (every content column) as the template's next version; returns it.

    The version is incremented in the UPDATE itself: on PostgreSQL the row lock orders
    concurrent editors, so two saves never claim the same version.
    """
    statement = (
        update(email_templates)
        .where(email_templates.c.id == template_id)
        .values(**values, version=email_templates.c.version + 1)
        .returning(email_templates.c.version)
    )
    version = int(conn.execute(statement).scalar_one())
    _insert_version(conn, template_id, version, values, values["updated_at"])
    return version


def _insert_version(
    conn: Connection, template_id: int, version: int, values: dict[str, Any], at: Any
) -> None:
    content = {key: values[key] for key in CONTENT}
    conn.execute(
        email_template_versions.insert().values(
            template_id=template_id, version=version, created_at=at, **content
        )
    )


def delete_template(conn: Connection, template_id: int) -> None:
    conn.execute(delete(email_template_versions).where(
        email_template_versions.c.template_id == template_id
    ))  # fmt: skip
    conn.execute(delete(email_templates).where(email_templates.c.id == template_id))


def versions(
    conn: Connection, template_id: int, *, after: int = 0, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` versions after version ``after``, oldest first."""
    query = (
        select(email_template_versions)
        .where(
            email_template_versions.c.template_id == template_id,
            email_template_versions.c.version > after,
        )
        .order_by(email_template_versions.c.version)
        .limit(limit)
    )
    return [dict(row) for row in conn.execute(query).mappings()]
