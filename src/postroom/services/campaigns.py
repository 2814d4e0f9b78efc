"""Email campaigns: a draft (sender, inline template, audience, pace) and its lifecycle.

The contract's state machine (the SDKs' docstrings):

- ``draft`` → ``started`` (start: the audience is resolved at once and sending begins) or
  ``scheduled`` (schedule: ``datetime`` in the future, at most :data:`SCHEDULE_AHEAD`
  ahead; the scheduler launches it when the time comes, :mod:`campaign_sending`);
- ``scheduled`` → ``draft`` (cancel, or reset: the same here);
- ``started`` / ``queued`` / ``paused`` → ``terminated`` (terminate: nothing more is
  released; what was already accepted stays accepted);
- ``started`` → ``finished`` when every recipient has an outcome, or ``failed`` when the
  campaign cannot be sent at all (its ``current_state_metadata.error`` says why).

Any other transition is a 422 that names the state. Only drafts may be changed or
deleted. Starting or scheduling runs the sending checks (a sending domain of this account,
verified unless the account's bulk mail stays in the sandbox, a body, at least one contact
list) and refuses with 422 while the campaign stays a draft. Segments do not exist in
Postroom: ``contact_segment_ids`` must be empty.

The template is the campaign's own (subject, body_html, body_text), rendered per
recipient by Postroom's Handlebars engine with the contact's fields as merge tags;
``{{unsubscribe_url}}`` and the contract's ``__unsubscribe_url__`` are the recipient's
own unsubscribe link.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from postroom.config import DeliveryMode
from postroom.domain.addresses import is_valid_email
from postroom.domain.handlebars import TemplateError, compile_template
from postroom.domain.headers import is_header_text
from postroom.domain.streams import Stream
from postroom.errors import Conflict, NotFound, ValidationFailed
from postroom.services import Services, contacts, modes
from postroom.storage.repos import campaigns as repo
from postroom.storage.repos import contacts as contact_repo
from postroom.storage.repos import domains as domain_repo

DRAFT, SCHEDULED, STARTED, QUEUED, PAUSED = "draft", "scheduled", "started", "queued", "paused"
FINISHED, TERMINATED, FAILED = "finished", "terminated", "failed"
SENDING_STATES = (STARTED, QUEUED, PAUSED)
RAPID, GRADUAL = "rapid", "gradual"
DELIVERY_MODES = (RAPID, GRADUAL)
SCHEDULE_AHEAD = timedelta(days=31)  # "no more than 1 month ahead"
NAME_MAX = 255
LOCAL_PART_MAX = 64
EMAILS_PER_HOUR_MAX = 10_000_000
PER_PAGE_DEFAULT, PER_PAGE_MAX = 50, 100
SEGMENTS_UNSUPPORTED = "contact segments are not supported by Postroom; use contact_list_ids"
_TEXT_FIELDS = ("subject", "body_html", "body_text")


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign row as stored, with its domain's name and recorded per-recipient errors."""

    row: dict[str, Any]
    errors: list[dict[str, Any]]


# --- validation -------------------------------------------------------------------------


def _text(value: Any, name: str, limit: int, errors: dict[str, list[str]]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        errors[name] = ["can't be blank"]
        return None
    if len(value) > limit:
        errors[name] = [f"is too long (maximum is {limit} characters)"]
        return None
    if not is_header_text(value):
        errors[name] = ["contains invalid characters"]
        return None
    return value.strip()


def _optional_text(value: Any, name: str, limit: int, errors: dict[str, list[str]]) -> Any:
    if value is None or value == "":
        return None
    return _text(value, name, limit, errors)


def _int_list(value: Any, name: str, errors: dict[str, list[str]]) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        errors[name] = ["must be an array of ids"]
        return []
    return list(dict.fromkeys(value))


def _reply_to(value: Any, errors: dict[str, list[str]]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        errors["reply_to"] = ["must be an object"]
        return None
    parts = {k: value.get(k) or None for k in ("display_name", "local_part", "domain")}
    if any(p is not None and not isinstance(p, str) for p in parts.values()):
        errors["reply_to"] = ["parts must be strings"]
        return None
    if parts["display_name"] is not None and not is_header_text(parts["display_name"]):
        errors["reply_to"] = ["display_name contains invalid characters"]
        return None
    if (parts["local_part"] is None) != (parts["domain"] is None):
        errors["reply_to"] = ["needs both local_part and domain"]
        return None
    if parts["local_part"] is not None and not is_valid_email(
        f"{parts['local_part']}@{parts['domain']}"
    ):
        errors["reply_to"] = ["is not a valid email address"]
        return None
    return parts if any(parts.values()) else None


def _template(
    value: Any,
    current: Mapping[str, Any] | None,
    max_chars: int,
    errors: dict[str, list[str]],
) -> dict[str, Any]:
    """The template fields to store (``current`` with the given sub-fields applied)."""
    if value is None and current is not None:
        return {}
    if not isinstance(value, dict):
        errors["template_attributes"] = ["must be an object with a subject"]
        return {}
    found: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        if name not in value and current is not None:
            continue
        text = value.get(name)
        where = f"template_attributes.{name}"
        if name == "subject":
            if not isinstance(text, str) or not text.strip():
                errors[where] = ["can't be blank"]
                continue
            if len(text) > NAME_MAX * 4 or not is_header_text(text):
                errors[where] = ["is too long or contains invalid characters"]
                continue
        elif text is None or text == "":
            found[name] = None
            continue
        elif not isinstance(text, str) or len(text) > max_chars:
            errors[where] = [f"must be a string of at most {max_chars} characters"]
            continue
        try:
            compile_template(text)
        except TemplateError as exc:
            errors[where] = [f"has invalid Handlebars syntax: {exc}"]
            continue
        found[name] = text
    if "merge_tags" in value or current is None:
        tags = value.get("merge_tags")
        if tags is None:
            found["merge_tags"] = []
        elif not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            errors["template_attributes.merge_tags"] = ["must be an array of strings"]
        else:
            found["merge_tags"] = list(dict.fromkeys(tags))
    return found


def _clean(
    services: Services,
    conn: Connection,
    account_id: int,
    body: Mapping[str, Any],
    current: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The columns a create (``current`` None) or a draft's update sets; Conflict (422)
    with every error found."""
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    creating = current is None

    def given(name: str) -> bool:
        return creating or name in body

    if given("name"):
        values["name"] = _text(body.get("name"), "name", NAME_MAX, errors)
    if given("domain_id"):
        domain_id = body.get("domain_id")
        if (
            not isinstance(domain_id, int)
            or isinstance(domain_id, bool)
            or domain_repo.get_domain(conn, account_id, domain_id) is None
        ):
            errors["domain_id"] = ["must be the id of a sending domain of this account"]
        values["domain_id"] = domain_id
    if given("from_local_part"):
        local = _text(body.get("from_local_part"), "from_local_part", LOCAL_PART_MAX, errors)
        if local is not None and not is_valid_email(f"{local}@example.com"):
            errors["from_local_part"] = ["is not a valid local part"]
        values["from_local_part"] = local
    if "from_display_name" in body:
        values["from_display_name"] = _optional_text(
            body.get("from_display_name"), "from_display_name", NAME_MAX, errors
        )
    if "reply_to" in body:
        values["reply_to"] = _reply_to(body.get("reply_to"), errors)
    values.update(
        _template(
            body.get("template_attributes"),
            current,
            services.settings.templates.max_body_chars,
            errors,
        )
    )
    if given("delivery_mode"):
        mode = body.get("delivery_mode") or RAPID
        if mode not in DELIVERY_MODES:
            errors["delivery_mode"] = [f"must be one of: {', '.join(DELIVERY_MODES)}"]
        values["delivery_mode"] = mode
    if "delivery_options" in body:
        options = body.get("delivery_options") or {}
        rate = options.get("emails_per_hour") if isinstance(options, dict) else "bad"
        if rate is not None and (
            not isinstance(rate, int) or isinstance(rate, bool) or not rate >= 1
        ):
            errors["delivery_options.emails_per_hour"] = ["must be a positive integer"]
        values["emails_per_hour"] = min(rate, EMAILS_PER_HOUR_MAX) if type(rate) is int else None
    if given("contact_list_ids"):
        lists = _int_list(body.get("contact_list_ids"), "contact_list_ids", errors)
        missing = sorted(set(lists) - contact_repo.existing_list_ids(conn, account_id, lists))
        if missing:
            unknown = ", ".join(map(str, missing))
            errors["contact_list_ids"] = [f"contains unknown list ids: {unknown}"]
        values["contact_list_ids"] = lists
    if _int_list(body.get("contact_segment_ids"), "contact_segment_ids", errors):
        errors["contact_segment_ids"] = [SEGMENTS_UNSUPPORTED]
    if errors:
        raise Conflict(errors)
    return values


# --- reading ----------------------------------------------------------------------------

ERRORS_SHOWN = 100


def _load(conn: Connection, account_id: int, campaign_id: int) -> Campaign:
    row = repo.get(conn, account_id, campaign_id)
    if row is None:
        raise NotFound("email campaign")
    shown = repo.errors(conn, campaign_id, ERRORS_SHOWN) if row["state"] != DRAFT else []
    return Campaign(row, shown)


async def get(services: Services, account_id: int, campaign_id: int) -> Campaign:
    return await services.db.read(lambda conn: _load(conn, account_id, campaign_id))


async def page(
    services: Services, account_id: int, search: str | None, token: int, per_page: int
) -> tuple[list[Campaign], bool]:
    """Page ``token`` (from 1) of ``per_page`` campaigns, newest first; and whether more."""

    def run(conn: Connection) -> list[dict[str, Any]]:
        return repo.page(conn, account_id, search, (token - 1) * per_page, per_page + 1)

    rows = await services.db.read(run)
    return [Campaign(r, []) for r in rows[:per_page]], len(rows) > per_page


# --- changing a draft -------------------------------------------------------------------


async def create(services: Services, account_id: int, body: Mapping[str, Any]) -> Campaign:
    now = services.clock.now()

    def run(conn: Connection) -> Campaign:
        values = _clean(services, conn, account_id, body, None)
        values.setdefault("emails_per_hour", None)
        campaign_id = repo.insert_campaign(
            conn,
            {
                **values,
                "account_id": account_id,
                "state": DRAFT,
                "released": 0,
                "slices": 0,
                "created_at": now,
                "updated_at": now,
            },
        )
        return _load(conn, account_id, campaign_id)

    return await services.db.write(run)


async def update(
    services: Services, account_id: int, campaign_id: int, body: Mapping[str, Any]
) -> Campaign:
    now = services.clock.now()

    def run(conn: Connection) -> Campaign:
        current = _load(conn, account_id, campaign_id).row
        _require_state(current, (DRAFT,), "updated")
        values = _clean(services, conn, account_id, body, current)
        repo.update_campaign(
            conn, account_id, campaign_id, {**values, "updated_at": now}, states=(DRAFT,)
        )
        return _load(conn, account_id, campaign_id)

    return await services.db.write(run)


async def delete(services: Services, account_id: int, campaign_id: int) -> None:
    def run(conn: Connection) -> None:
        current = _load(conn, account_id, campaign_id).row
        _require_state(current, (DRAFT,), "deleted")
        repo.delete_campaign(conn, account_id, campaign_id, DRAFT)

    await services.db.write(run)


def _require_state(row: Mapping[str, Any], states: tuple[str, ...], action: str) -> None:
    if row["state"] not in states:
        allowed = " or ".join(states)
        raise ValidationFailed(
            [f"the campaign is {row['state']}: only a {allowed} campaign can be {action}"]
        )


# --- the lifecycle ----------------------------------------------------------------------


async def sending_problems(services: Services, row: Mapping[str, Any]) -> dict[str, list[str]]:
    """What keeps a campaign from being sent (empty: nothing)."""
    problems: dict[str, list[str]] = {}
    account_id = int(row["account_id"])
    domain = None
    if row["domain_id"] is not None:
        domain = await services.db.read(
            lambda conn: domain_repo.get_domain(conn, account_id, int(row["domain_id"]))
        )
    if domain is None:
        problems["domain_id"] = ["must be the id of a sending domain of this account"]
    elif not domain["dns_verified"]:
        mode = await modes.for_account(services, account_id, Stream.BULK.value)
        if mode is not DeliveryMode.SANDBOX:
            problems["domain_id"] = [f"the sending domain {domain['domain_name']} is not verified"]
    if not (row["body_html"] or row["body_text"]):
        problems["template_attributes.body_html"] = ["is required to send the campaign"]
    if not row["contact_list_ids"]:
        problems["contact_list_ids"] = ["at least one contact list is required to send"]
    if row["delivery_mode"] == GRADUAL and not row["emails_per_hour"]:
        problems["delivery_options.emails_per_hour"] = ["is required in the gradual mode"]
    return problems


async def _checked_draft(services: Services, account_id: int, campaign_id: int) -> Campaign:
    found = await get(services, account_id, campaign_id)
    _require_state(found.row, (DRAFT,), "started or scheduled")
    problems = await sending_problems(services, found.row)
    if problems:
        raise Conflict(problems)
    return found


async def launch(
    services: Services, account_id: int, campaign_id: int, states: tuple[str, ...]
) -> bool:
    """Resolve the audience and move the campaign from ``states`` to ``started``.

    The recipients (subscribed contacts of its lists, each once:
    :func:`postroom.services.contacts.list_recipients`) are stored with the state change
    in one transaction; False when the campaign left ``states`` meanwhile.
    """
    found = await get(services, account_id, campaign_id)
    lists = [int(i) for i in found.row["contact_list_ids"]]
    people = await contacts.list_recipients(services, account_id, lists)
    now = services.clock.now()

    def run(conn: Connection) -> bool:
        moved = repo.update_campaign(
            conn,
            account_id,
            campaign_id,
            {
                "state": STARTED,
                "state_reason": None,
                "state_error": None,
                "scheduled_at": None,
                "last_started_at": now,
                "recipient_total_count": len(people),
                "released": 0,
                "updated_at": now,
            },
            states=states,
        )
        if moved:
            repo.insert_recipients(conn, campaign_id, [(p.email, p.fields) for p in people])
        return moved

    return await services.db.write(run)


async def start(services: Services, account_id: int, campaign_id: int) -> Campaign:
    await _checked_draft(services, account_id, campaign_id)
    if not await launch(services, account_id, campaign_id, (DRAFT,)):
        await _transition_refused(services, account_id, campaign_id, (DRAFT,), "started")
    return await get(services, account_id, campaign_id)


def parse_schedule(value: Any, now: datetime) -> datetime:
    """The ``datetime`` of a schedule request: ISO 8601 with a zone, in the future, at most
    :data:`SCHEDULE_AHEAD` ahead."""
    if not isinstance(value, str):
        raise Conflict({"datetime": ["must be an ISO 8601 timestamp"]})
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Conflict({"datetime": ["must be an ISO 8601 timestamp"]}) from None
    if when.tzinfo is None:
        raise Conflict({"datetime": ["must include a time zone (e.g. Z or +00:00)"]})
    if when <= now:
        raise Conflict({"datetime": ["must be in the future"]})
    if when > now + SCHEDULE_AHEAD:
        raise Conflict({"datetime": ["must be at most 1 month ahead"]})
    return when


async def schedule(
    services: Services, account_id: int, campaign_id: int, body: Mapping[str, Any]
) -> Campaign:
    when = parse_schedule(body.get("datetime"), services.clock.now())
    await _checked_draft(services, account_id, campaign_id)
    values = {"state": SCHEDULED, "scheduled_at": when, "state_reason": None}
    return await _move(services, account_id, campaign_id, (DRAFT,), values, "scheduled")


async def cancel(services: Services, account_id: int, campaign_id: int) -> Campaign:
    """Cancel (or reset) a scheduled campaign: a draft again."""
    values = {"state": DRAFT, "scheduled_at": None, "state_reason": None}
    return await _move(services, account_id, campaign_id, (SCHEDULED,), values, "cancelled")


async def terminate(services: Services, account_id: int, campaign_id: int) -> Campaign:
    values = {"state": TERMINATED, "state_reason": "terminated by request"}
    return await _move(services, account_id, campaign_id, SENDING_STATES, values, "terminated")


async def _move(
    services: Services,
    account_id: int,
    campaign_id: int,
    states: tuple[str, ...],
    values: dict[str, Any],
    action: str,
) -> Campaign:
    now = services.clock.now()

    def run(conn: Connection) -> Campaign:
        current = _load(conn, account_id, campaign_id).row
        _require_state(current, states, action)
        repo.update_campaign(
            conn, account_id, campaign_id, {**values, "updated_at": now}, states=states
        )
        return _load(conn, account_id, campaign_id)

    return await services.db.write(run)


async def _transition_refused(
    services: Services, account_id: int, campaign_id: int, states: tuple[str, ...], action: str
) -> None:
    _require_state((await get(services, account_id, campaign_id)).row, states, action)
    raise ValidationFailed([f"the campaign could not be {action}"])
