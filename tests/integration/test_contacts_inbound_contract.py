"""Every contacts and inbound operation's real responses, validated against the official
spec's schemas (tests/data/spec/mailtrap-openapi), in both path families.

Each call names its spec operation (method and account-less path); the response's status
must be one the operation declares, and its body must match that status's schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml
from starlette.testclient import TestClient
from test_domains_api import tenant
from test_inbound_mail import _message, _send

from postroom.services import Services
from postroom.services.accounts import Bootstrap

SPECS = Path(__file__).parents[1] / "data/spec/mailtrap-openapi"
_LOADED: dict[str, dict[str, Any]] = {}


def _spec(name: str) -> dict[str, Any]:
    if name not in _LOADED:
        _LOADED[name] = _nullable(yaml.safe_load((SPECS / f"{name}.openapi.yml").read_text()))
    return _LOADED[name]


def _nullable(schema: Any) -> Any:
    """OpenAPI 3.0's ``nullable`` (which the contacts spec still uses) as JSON Schema."""
    if isinstance(schema, list):
        return [_nullable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _nullable(v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        found: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        node = found
    return node


class Contract:
    """Calls the server and checks each answer against the named spec operation."""

    def __init__(self, client: TestClient, spec: str) -> None:
        self.client = client
        self.spec = _spec(spec)
        self.checked: set[tuple[str, str, int]] = set()

    def call(self, method: str, operation: str, path: str, *, status: int, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        assert response.status_code == status, (method, path, response.text)
        declared = self.spec["paths"][operation][method.lower()]["responses"]
        assert str(status) in declared, (method, operation, status, "not in the spec")
        answer = _resolve(self.spec, declared[str(status)])
        content = answer.get("content", {}).get("application/json")
        if content is None:
            assert response.content == b"", (method, path)
            self.checked.add((method, operation, status))
            return None
        body = response.json()
        root = {**content["schema"], "components": self.spec["components"]}
        errors = [e.message for e in jsonschema_rs.validator_for(root).iter_errors(body)]
        assert not errors, (method, path, errors[:5], body)
        self.checked.add((method, operation, status))
        return body


def _families(boot: Bootstrap) -> list[str]:
    return [f"/api/accounts/{boot.account_id}", "/api"]


# --- contacts -----------------------------------------------------------------------------


def test_every_contacts_operation_answers_in_the_spec_shapes(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    c = Contract(client, "contacts")
    for n, prefix in enumerate(_families(boot)):
        base = f"{prefix}/contacts"
        field = c.call(
            "POST",
            "/api/contacts/fields",
            f"{base}/fields",
            status=201,
            json={"name": f"First {n}", "data_type": "text", "merge_tag": f"first_{n}"},
        )
        c.call("GET", "/api/contacts/fields", f"{base}/fields", status=200)
        fid = f"{base}/fields/{field['id']}"
        c.call("GET", "/api/contacts/fields/{field_id}", fid, status=200)
        c.call(
            "PATCH", "/api/contacts/fields/{field_id}", fid, status=200, json={"name": f"Given {n}"}
        )
        c.call(
            "PATCH",
            "/api/contacts/fields/{field_id}",
            fid,
            status=422,
            json={"data_type": "integer"},
        )
        c.call(
            "POST",
            "/api/contacts/fields",
            f"{base}/fields",
            status=422,
            json={"name": "x", "data_type": "nope", "merge_tag": "x"},
        )

        made = c.call(
            "POST", "/api/contacts/lists", f"{base}/lists", status=200, json={"name": f"L{n}"}
        )
        c.call("GET", "/api/contacts/lists", f"{base}/lists", status=200)
        lid = f"{base}/lists/{made['id']}"
        c.call("GET", "/api/contacts/lists/{list_id}", lid, status=200)
        c.call("PATCH", "/api/contacts/lists/{list_id}", lid, status=200, json={"name": "M"})
        c.call("GET", "/api/contacts/lists/{list_id}", f"{base}/lists/99999", status=404)

        email = f"person{n}@example.com"
        contact = c.call(
            "POST",
            "/api/contacts",
            base,
            status=201,
            json={
                "contact": {
                    "email": email,
                    "fields": {f"first_{n}": "Ann"},
                    "list_ids": [made["id"]],
                }
            },
        )["data"]
        c.call("POST", "/api/contacts", base, status=422, json={"contact": {"email": email}})
        one = "/api/contacts/{contact_identifier}"
        c.call("GET", one, f"{base}/{contact['id']}", status=200)
        c.call("GET", one, f"{base}/{email}", status=200)
        c.call("GET", one, f"{base}/nobody@example.com", status=404)
        c.call(
            "PATCH",
            one,
            f"{base}/{email}",
            status=200,
            json={"contact": {"email": email, "unsubscribed": True}},
        )
        c.call(
            "PATCH",
            one,
            f"{base}/new{n}@example.com",
            status=200,
            json={"contact": {"email": f"new{n}@example.com"}},
        )
        c.call(
            "PATCH",
            one,
            f"{base}/{email}",
            status=422,
            json={"contact": {"email": email, "fields": {"unknown": 1}}},
        )
        c.call(
            "POST",
            "/api/contacts/{contact_identifier}/events",
            f"{base}/{email}/events",
            status=201,
            json={"name": "UserLogin", "params": {"a": 1, "b": None, "c": True, "d": "x"}},
        )
        c.call(
            "POST",
            "/api/contacts/{contact_identifier}/events",
            f"{base}/nobody@example.com/events",
            status=404,
            json={"name": "UserLogin"},
        )
        c.call(
            "POST",
            "/api/contacts/{contact_identifier}/events",
            f"{base}/{email}/events",
            status=422,
            json={"name": ""},
        )

        job = c.call(
            "POST",
            "/api/contacts/imports",
            f"{base}/imports",
            status=201,
            json={
                "contacts": [{"email": f"imp{n}@example.com", "list_ids_included": [made["id"]]}]
            },
        )
        c.call(
            "POST",
            "/api/contacts/imports",
            f"{base}/imports",
            status=422,
            json={"contacts": [{"email": "broken"}]},
        )
        c.call(
            "GET", "/api/contacts/imports/{import_id}", f"{base}/imports/{job['id']}", status=200
        )
        c.call("GET", "/api/contacts/imports/{import_id}", f"{base}/imports/99999", status=404)

        export = c.call(
            "POST",
            "/api/contacts/exports",
            f"{base}/exports",
            status=201,
            json={"filters": [{"name": "list_id", "operator": "equal", "value": [made["id"]]}]},
        )
        c.call(
            "GET", "/api/contacts/exports/{export_id}", f"{base}/exports/{export['id']}", status=200
        )
        c.call("GET", "/api/contacts/exports/{export_id}", f"{base}/exports/99999", status=404)
        c.call(
            "POST",
            "/api/contacts/exports",
            f"{base}/exports",
            status=422,
            json={"filters": [{"name": "age", "operator": "equal", "value": 3}]},
        )

        c.call("DELETE", one, f"{base}/{contact['id']}", status=204)
        c.call("DELETE", one, f"{base}/{contact['id']}", status=404)
        c.call("DELETE", "/api/contacts/lists/{list_id}", lid, status=204)
        c.call("DELETE", "/api/contacts/fields/{field_id}", fid, status=204)
        c.call("DELETE", "/api/contacts/fields/{field_id}", fid, status=404)

    # Errors of authentication and of another tenant, in the spec's shapes too.
    c.call(
        "GET",
        "/api/contacts/lists",
        "/api/contacts/lists",
        status=401,
        headers={"Authorization": "Bearer nope"},
    )
    other = {"Authorization": f"Bearer {tenant(services, scopes=('read',))}"}
    c.call("POST", "/api/contacts", "/api/contacts", status=403, headers=other, json={})

    operations = {(m, p) for m, p, _ in c.checked}
    declared = {
        (m.upper(), p)
        for p, ops in _spec("contacts")["paths"].items()
        for m in ops
        if m in ("get", "post", "patch", "delete")
    }
    assert declared - operations == set()


# --- inbound ------------------------------------------------------------------------------


def test_every_inbound_operation_answers_in_the_spec_shapes(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    services.settings.inbound.check_authentication = False  # no DNS here: shapes only
    c = Contract(client, "inbound")
    for n, prefix in enumerate(_families(boot)):
        base = f"{prefix}/inbound"
        folder = c.call(
            "POST", "/api/inbound/folders", f"{base}/folders", status=201, json={"name": f"F{n}"}
        )
        c.call("POST", "/api/inbound/folders", f"{base}/folders", status=422, json={"name": ""})
        c.call("GET", "/api/inbound/folders", f"{base}/folders", status=200)
        one = "/api/inbound/folders/{folder_id}"
        fpath = f"{base}/folders/{folder['id']}"
        c.call("GET", one, fpath, status=200)
        c.call("GET", one, f"{base}/folders/99999", status=404)
        c.call("PATCH", one, fpath, status=200, json={"name": f"G{n}"})
        c.call("PATCH", one, fpath, status=422, json={"name": "x" * 101})
        c.call("PATCH", one, f"{base}/folders/99999", status=404, json={"name": "x"})

        boxes = "/api/inbound/folders/{folder_id}/inboxes"
        inbox = c.call("POST", boxes, f"{fpath}/inboxes", status=201, json={"name": "Desk"})
        c.call("POST", boxes, f"{fpath}/inboxes", status=422, json={"name": ""})
        c.call("POST", boxes, f"{base}/folders/99999/inboxes", status=404, json={"name": "x"})
        c.call("GET", boxes, f"{fpath}/inboxes", status=200)
        c.call("GET", boxes, f"{base}/folders/99999/inboxes", status=404)
        box = boxes + "/{inbox_id}"
        ipath = f"{fpath}/inboxes/{inbox['id']}"
        c.call("GET", box, ipath, status=200)
        c.call("GET", box, f"{fpath}/inboxes/99999", status=404)
        c.call("PATCH", box, ipath, status=200, json={"name": "Help"})
        c.call("PATCH", box, ipath, status=422, json={"name": ""})
        c.call("PATCH", box, f"{fpath}/inboxes/99999", status=404, json={"name": "x"})

        raw = _message(inbox["address"])
        assert _send(services, [inbox["address"]], raw)[1] == 250
        assert (
            _send(services, [inbox["address"]], _message(inbox["address"], body=_PLAIN))[1] == 250
        )
        listing = "/api/inbound/inboxes/{inbox_id}/messages"
        mpath = f"{base}/inboxes/{inbox['id']}/messages"
        page = c.call("GET", listing, mpath, status=200)
        assert page["total_count"] == 2
        c.call("GET", listing, f"{base}/inboxes/99999/messages", status=404)
        single = listing + "/{id}"
        for item in page["data"]:
            c.call("GET", single, f"{mpath}/{item['id']}", status=200)
        c.call("GET", single, f"{mpath}/99999", status=404)
        c.call("DELETE", single, f"{mpath}/{page['data'][0]['id']}", status=204)
        c.call("DELETE", single, f"{mpath}/{page['data'][0]['id']}", status=404)

        c.call("DELETE", box, ipath, status=204)
        c.call("DELETE", box, ipath, status=404)
        c.call("DELETE", one, fpath, status=204)
        c.call("DELETE", one, fpath, status=404)

    c.call(
        "GET",
        "/api/inbound/folders",
        "/api/inbound/folders",
        status=401,
        headers={"Authorization": "Bearer nope"},
    )
    reader = {"Authorization": f"Bearer {tenant(services, scopes=('read',))}"}
    c.call(
        "POST", "/api/inbound/folders", "/api/inbound/folders", status=403, headers=reader, json={}
    )

    operations = {(m, p) for m, p, _ in c.checked}
    declared = {
        (m.upper(), p)
        for p, ops in _spec("inbound")["paths"].items()
        for m in ops
        if m in ("get", "post", "patch", "delete")
    }
    assert declared - operations == set()


_PLAIN = "Content-Type: text/plain\r\n\r\nJust text.\r\n"
