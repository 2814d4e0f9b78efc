"""Every public method of the installed official Python SDK and the request it makes.

Each API group the ``MailtrapClient`` offers is built on a recording HTTP client; every
public method of every resource is called once with placeholder arguments, and the first
request it makes (method and path, placeholders turned back into ``{names}``) is kept.
docs/compatibility.md's "Official SDK coverage" table is checked against this list
(tests/unit/test_sdk_inventory.py), so an SDK upgrade that adds or moves a method shows.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from typing import Any
from unittest import mock

import mailtrap.client
from mailtrap.client import MailtrapClient

ACCOUNT = "9001"
ID = 9002
KEY = "k9003"
# The placeholder after a path segment becomes that segment's id name.
_ID_NAMES = {
    "accounts": "account_id",
    "organizations": "organization_id",
    "projects": "project_id",
    "inboxes": "inbox_id",
    "messages": "message_id",
    "attachments": "attachment_id",
    "folders": "folder_id",
    "forward_rules": "rule_id",
    "threads": "thread_id",
    "domains": "domain_id",
    "sending_domains": "domain_id",
    "email_templates": "template_id",
    "templates": "template_id",
    "contacts": "contact_id",
    "fields": "field_id",
    "lists": "list_id",
    "exports": "export_id",
    "imports": "import_id",
    "email_logs": "message_id",
    "suppressions": "suppression_id",
    "tracking_opt_outs": "opt_out_id",
    "webhooks": "webhook_id",
    "api_tokens": "token_id",
    "account_accesses": "access_id",
    "email_campaigns": "campaign_id",
}
_PLACEHOLDER = re.compile(rf"/([a-z_]+)/(?:{ACCOUNT}|{ID}|{KEY})(?=/|$)")


class _Stop(Exception):
    """Raised by the recorder once the request is seen: nothing is sent."""


class _Recorder:
    """Stands in for ``mailtrap.http.HttpClient``: records, never connects."""

    seen: list[tuple[str, str]] = []

    def __init__(self, host: str, headers: dict[str, str] | None = None) -> None:
        self.host = host

    def _record(self, verb: str, path: str) -> Any:
        _Recorder.seen.append((verb, path))
        raise _Stop

    def get(self, path: str, params: Any = None) -> Any:
        return self._record("GET", path)

    def post(self, path: str, json: Any = None) -> Any:
        return self._record("POST", path)

    def put(self, path: str, json: Any = None) -> Any:
        return self._record("PUT", path)

    def patch(self, path: str, json: Any = None) -> Any:
        return self._record("PATCH", path)

    def delete(self, path: str) -> Any:
        return self._record("DELETE", path)


def _template(path: str) -> str:
    return _PLACEHOLDER.sub(lambda m: f"/{m.group(1)}/{{{_ID_NAMES[m.group(1)]}}}", path)


def _argument(parameter: inspect.Parameter) -> Any:
    kind = str(parameter.annotation)
    if "Params" in kind or "list" in kind:
        return mock.MagicMock()
    if "int" in kind:
        return ID
    if kind in {"str", "<class 'str'>"}:
        return KEY
    return mock.MagicMock()


def _request(method: Any) -> tuple[str, str]:
    required = [
        p
        for p in inspect.signature(method).parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    _Recorder.seen = []
    with contextlib.suppress(_Stop):
        method(*[_argument(p) for p in required])
    verb, path = _Recorder.seen[0]
    return verb, _template(path)


def python_sdk_methods() -> dict[str, tuple[str, str]]:
    """``{"testing_api.inboxes.get_list": ("GET", "/api/accounts/{account_id}/inboxes")}``
    for every public resource method, plus the client's ``send`` and ``batch_send``."""
    found: dict[str, tuple[str, str]] = {}
    with mock.patch.object(mailtrap.client, "HttpClient", _Recorder):
        client = MailtrapClient(token="t", account_id=ACCOUNT, organization_id=ACCOUNT)
        for group in sorted(n for n in dir(MailtrapClient) if n.endswith("_api")):
            api = getattr(client, group)
            if group in {"sending_api", "stats_api"}:
                resources = {group: api}
            else:
                resources = {
                    f"{group}.{name}": getattr(api, name)
                    for name, attr in vars(type(api)).items()
                    if isinstance(attr, property)
                }
            for prefix, resource in resources.items():
                for name, function in vars(type(resource)).items():
                    if not name.startswith("_") and inspect.isfunction(function):
                        found[f"{prefix}.{name}"] = _request(getattr(resource, name))
        for name in ("send", "batch_send"):
            found[f"MailtrapClient.{name}"] = _request(getattr(client, name))
    return found
