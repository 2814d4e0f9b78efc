"""Batch sends to contact lists: Postroom's addition to ``/api/batch``.

A request of a batch may name ``"list_ids": [3, 5]`` instead of ``to``/``cc``/``bcc``
(the contract has no spelling for this; neither SDK sends it). It is sent once to each
subscribed contact of those lists (:func:`postroom.services.contacts.list_recipients`:
unsubscribed and suppressed contacts are left out), each a message of its own, with
the contact's fields merged over the request's ``template_variables`` (so
``{{first_name}}`` is the contact's). The batch answers one response for the request,
in its place: ``message_ids`` of every message it became.

One call expands to at most :data:`MAX_LIST_RECIPIENTS` messages in all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from postroom.errors import Conflict, ValidationFailed
from postroom.services import Services, contacts

MAX_LIST_RECIPIENTS = 10_000
_RECIPIENTS = ("to", "cc", "bcc")


@dataclass(slots=True)
class Expanded:
    """The batch body with list requests expanded, and how to fold the answers back."""

    body: Any
    # For each request of the original batch: the position of a request left as it is
    # (an int), the positions a list request became (a range), or the error a list
    # request is answered with (it sends nothing).
    spans: list[int | range | list[str]] = field(default_factory=list)


def _list_ids(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ValidationFailed(["'list_ids' must be a non-empty array of list ids"])
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise ValidationFailed(["'list_ids' must be a non-empty array of list ids"])
    return list(dict.fromkeys(value))


async def expand(services: Services, account_id: int, body: Any) -> Expanded | None:
    """None when no request names ``list_ids`` (the batch is left as it is)."""
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        return None
    requests = body["requests"]
    if not any(isinstance(r, dict) and "list_ids" in r for r in requests):
        return None
    out: list[Any] = []
    spans: list[int | range | list[str]] = []
    for item in requests:
        if not (isinstance(item, dict) and "list_ids" in item):
            spans.append(len(out))
            out.append(item)
            continue
        try:
            if any(item.get(name) for name in _RECIPIENTS):
                raise ValidationFailed(["a request with 'list_ids' must not have to, cc or bcc"])
            found = await contacts.list_recipients(
                services, account_id, _list_ids(item["list_ids"])
            )
        except ValidationFailed as exc:
            spans.append(list(exc.errors))
            continue
        except Conflict as exc:
            spans.append([m for messages in exc.field_errors.values() for m in messages])
            continue
        base = {k: v for k, v in item.items() if k != "list_ids"}
        variables = base.get("template_variables")
        shared = variables if isinstance(variables, dict) else {}
        start = len(out)
        for person in found:
            copy = {**base, "to": [{"email": person.email}]}
            if "template_uuid" in base or "template_uuid" in (body.get("base") or {}):
                copy["template_variables"] = {**shared, **person.fields}
            out.append(copy)
        spans.append(range(start, len(out)))
        if len(out) > MAX_LIST_RECIPIENTS:
            raise ValidationFailed(
                [f"list sends may reach at most {MAX_LIST_RECIPIENTS} recipients in one call"]
            )
    return Expanded({**body, "requests": out}, spans)


def fold(expanded: Expanded, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The expanded requests' answers, one per original request again."""
    folded: list[dict[str, Any]] = []
    for span in expanded.spans:
        if isinstance(span, int):
            folded.append(items[span])
            continue
        if isinstance(span, list):
            folded.append({"success": False, "errors": span})
            continue
        parts = [items[i] for i in span]
        ids = [m for p in parts for m in p.get("message_ids", [])]
        errors = [e for p in parts for e in p.get("errors", [])]
        if errors:
            folded.append(
                {"success": False, "errors": list(dict.fromkeys(errors)), "message_ids": ids}
            )
        else:
            folded.append({"success": True, "message_ids": ids})
    return folded
