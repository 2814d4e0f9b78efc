"""Sandbox projects and inboxes: the use cases behind the management API (spec §4.9).

Every lookup is scoped to the caller's account, so another tenant's project or inbox is
indistinguishable from one that does not exist (NotFound → 404). Values that are random
or time-dependent (passwords, usernames, ``now``) are made before the write function is
submitted: the group-commit writer may run that function twice after a rollback, and
both runs must write the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from postroom.errors import Conflict, NotFound
from postroom.sandbox.credentials import new_password
from postroom.services import Services
from postroom.services.accounts import inbox_values
from postroom.storage.repos import sandbox as repo

PROJECT_NAME_MIN, PROJECT_NAME_MAX = 2, 100
INBOX_NAME_MAX = 100
# The local part of an inbox's own address: what a mail server would accept unquoted.
_EMAIL_USERNAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class InboxView:
    """An inbox row and the counts its JSON shows (messages, unread, forwarded)."""

    row: dict[str, Any]
    emails_count: int
    unread_count: int
    forwarded_count: int


@dataclass(frozen=True, slots=True)
class ProjectView:
    """A project row and its inboxes."""

    row: dict[str, Any]
    inboxes: list[InboxView]


# --- validation -------------------------------------------------------------------------


def _length_errors(value: object, minimum: int, maximum: int) -> list[str]:
    # Rails' wording, which the SDKs show verbatim to their users.
    if not isinstance(value, str) or not value.strip():
        return ["can't be blank"]
    if len(value.strip()) < minimum:
        return [f"is too short (minimum is {minimum} characters)"]
    if len(value.strip()) > maximum:
        return [f"is too long (maximum is {maximum} characters)"]
    return []


def valid_project_name(value: object) -> str:
    errors = _length_errors(value, PROJECT_NAME_MIN, PROJECT_NAME_MAX)
    if errors:
        raise Conflict({"name": errors})
    assert isinstance(value, str)
    return value.strip()


def valid_inbox_name(value: object) -> str:
    errors = _length_errors(value, 1, INBOX_NAME_MAX)
    if errors:
        raise Conflict({"name": errors})
    assert isinstance(value, str)
    return value.strip()


def valid_email_username(value: object) -> str:
    if not isinstance(value, str) or not _EMAIL_USERNAME.fullmatch(value.strip().lower()):
        raise Conflict({"email_username": ["is invalid"]})
    return value.strip().lower()


# --- reading ----------------------------------------------------------------------------


def _views(conn: Connection, rows: list[dict[str, Any]]) -> list[InboxView]:
    ids = [int(r["id"]) for r in rows]
    counts, forwards = repo.message_counts(conn, ids), repo.forward_counts(conn, ids)
    return [
        InboxView(r, *counts.get(int(r["id"]), (0, 0)), forwards.get(int(r["id"]), 0)) for r in rows
    ]


def _require_inbox(conn: Connection, account_id: int, inbox_id: int) -> dict[str, Any]:
    row = repo.get_inbox(conn, account_id, inbox_id)
    if row is None:
        raise NotFound("inbox")
    return row


def _inbox_view(conn: Connection, account_id: int, inbox_id: int) -> InboxView:
    return _views(conn, [_require_inbox(conn, account_id, inbox_id)])[0]


def _require_project(conn: Connection, account_id: int, project_id: int) -> None:
    if repo.get_project(conn, account_id, project_id) is None:
        raise NotFound("project")


def _project_view(conn: Connection, account_id: int, project_id: int) -> ProjectView:
    row = repo.get_project(conn, account_id, project_id)
    if row is None:
        raise NotFound("project")
    return ProjectView(row, _views(conn, repo.list_inboxes(conn, account_id, [project_id])))


def _all_projects(conn: Connection, account_id: int) -> list[ProjectView]:
    inboxes = _views(conn, repo.list_inboxes(conn, account_id))
    return [
        ProjectView(p, [i for i in inboxes if i.row["project_id"] == p["id"]])
        for p in repo.list_projects(conn, account_id)
    ]


async def list_projects(services: Services, account_id: int) -> list[ProjectView]:
    return await services.db.read(lambda conn: _all_projects(conn, account_id))


async def get_project(services: Services, account_id: int, project_id: int) -> ProjectView:
    return await services.db.read(lambda conn: _project_view(conn, account_id, project_id))


async def list_inboxes(services: Services, account_id: int) -> list[InboxView]:
    return await services.db.read(lambda conn: _views(conn, repo.list_inboxes(conn, account_id)))


async def get_inbox(services: Services, account_id: int, inbox_id: int) -> InboxView:
    return await services.db.read(lambda conn: _inbox_view(conn, account_id, inbox_id))


# --- projects ---------------------------------------------------------------------------


async def create_project(services: Services, account_id: int, name: object) -> ProjectView:
    clean, now = valid_project_name(name), services.clock.now()

    def run(conn: Connection) -> ProjectView:
        project_id = repo.insert_project(
            conn, account_id=account_id, name=clean, created_at=now, updated_at=now
        )
        return _project_view(conn, account_id, project_id)

    return await services.db.write(run)


async def rename_project(
    services: Services, account_id: int, project_id: int, name: object
) -> ProjectView:
    clean, now = valid_project_name(name), services.clock.now()

    def run(conn: Connection) -> ProjectView:
        _require_project(conn, account_id, project_id)  # 404 unless it is the caller's
        repo.update_project(conn, project_id, name=clean, updated_at=now)
        return _project_view(conn, account_id, project_id)

    return await services.db.write(run)


async def delete_project(services: Services, account_id: int, project_id: int) -> int:
    """Delete a project with its inboxes and their messages; returns its id."""

    def run(conn: Connection) -> int:
        _require_project(conn, account_id, project_id)
        repo.delete_project(conn, project_id)
        return project_id

    return await services.db.write(run)


# --- inboxes ----------------------------------------------------------------------------


async def create_inbox(
    services: Services, account_id: int, project_id: int, name: object
) -> InboxView:
    clean = valid_inbox_name(name)
    values = inbox_values(services, account_id, project_id, clean)

    def run(conn: Connection) -> InboxView:
        _require_project(conn, account_id, project_id)
        return _inbox_view(conn, account_id, repo.insert_inbox(conn, **values))

    return await services.db.write(run)


async def update_inbox(
    services: Services, account_id: int, inbox_id: int, changes: dict[str, Any]
) -> InboxView:
    """Rename an inbox and/or change its email username (``changes`` as the client sent)."""
    values: dict[str, Any] = {"updated_at": services.clock.now()}
    if changes.get("name") is not None:
        values["name"] = valid_inbox_name(changes["name"])
    if changes.get("email_username") is not None:
        values["email_username"] = valid_email_username(changes["email_username"])

    def run(conn: Connection) -> InboxView:
        _require_inbox(conn, account_id, inbox_id)
        wanted = values.get("email_username")
        if wanted is not None and repo.email_username_taken(conn, wanted, inbox_id):
            raise Conflict({"email_username": ["has already been taken"]})
        return _change(conn, account_id, inbox_id, values)

    return await services.db.write(run)


def _change(conn: Connection, account_id: int, inbox_id: int, values: dict[str, Any]) -> InboxView:
    # Check ownership first: the UPDATE itself is keyed by inbox id alone.
    _require_inbox(conn, account_id, inbox_id)
    repo.update_inbox(conn, inbox_id, **values)
    return _inbox_view(conn, account_id, inbox_id)


async def delete_inbox(services: Services, account_id: int, inbox_id: int) -> InboxView:
    """Delete an inbox and its messages; returns the inbox as it was.

    Deleting the account's default inbox is allowed: capture then falls to the next inbox
    (``default_inbox_id`` orders by ``is_default``, then id).
    """

    def run(conn: Connection) -> InboxView:
        view = _inbox_view(conn, account_id, inbox_id)
        repo.delete_inbox(conn, inbox_id)
        return view

    return await services.db.write(run)


async def _update(
    services: Services, account_id: int, inbox_id: int, values: dict[str, Any]
) -> InboxView:
    return await services.db.write(lambda conn: _change(conn, account_id, inbox_id, values))


async def clean_inbox(services: Services, account_id: int, inbox_id: int) -> InboxView:
    """Delete every message of the inbox."""
    now = services.clock.now()

    def run(conn: Connection) -> InboxView:
        _require_inbox(conn, account_id, inbox_id)
        repo.delete_inbox_messages(conn, inbox_id)
        return _change(conn, account_id, inbox_id, {"updated_at": now})

    return await services.db.write(run)


async def mark_all_read(services: Services, account_id: int, inbox_id: int) -> InboxView:
    now = services.clock.now()

    def run(conn: Connection) -> InboxView:
        _require_inbox(conn, account_id, inbox_id)
        repo.mark_inbox_read(conn, inbox_id, now)
        return _change(conn, account_id, inbox_id, {"updated_at": now})

    return await services.db.write(run)


async def reset_credentials(services: Services, account_id: int, inbox_id: int) -> InboxView:
    """A new SMTP password; the old one stops working."""
    values = {**new_password(services), "updated_at": services.clock.now()}
    return await _update(services, account_id, inbox_id, values)


async def reset_email_username(services: Services, account_id: int, inbox_id: int) -> InboxView:
    values = {"email_username": services.ids.hex(5), "updated_at": services.clock.now()}
    return await _update(services, account_id, inbox_id, values)


async def toggle_email_username(services: Services, account_id: int, inbox_id: int) -> InboxView:
    """Turn the inbox's own email address on or off."""
    now = services.clock.now()

    def run(conn: Connection) -> InboxView:
        current = _require_inbox(conn, account_id, inbox_id)["email_username_enabled"]
        values = {"email_username_enabled": not current, "updated_at": now}
        return _change(conn, account_id, inbox_id, values)

    return await services.db.write(run)
