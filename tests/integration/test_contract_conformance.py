"""Every implemented operation of the official OpenAPI files, answered by Postroom in both
path families and validated against the spec's own response schemas.

The specs (Mailtrap's files unchanged, CC BY-SA 4.0, with their README) are read from
tests/data/spec/mailtrap-openapi, copies of shared/spec/mailtrap-openapi, so the test
needs nothing outside the checkout. For each operation of the files in ``SPEC_FILES``:

* whether Postroom answers it is read off the application's own routes;
* an answered operation needs a scenario in ``SCENARIOS`` (path parameters and body,
  made from real objects created through the API first), or the test fails: a route
  nobody checked against the contract is a gap;
* the scenario runs on the spec's account-less path (``/api/sandboxes/…``) and on the
  SDKs' ``/api/accounts/{account_id}/…`` form (``inboxes``, ``sending_domains``), and the
  2xx answer must have the spec's content type and validate against the spec's schema
  (OpenAPI 3.0 ``nullable`` read as JSON Schema; ``$ref`` resolved in the same file).

Operations on no single account (``/api/accounts``, the organization's sub-accounts) run
on their one path. The account-management spec's schemas require no property, so for it
every property the spec documents must also be present in the answer (``ABSENT`` lists
the exceptions, with why).

Where the published spec is wrong about the live service, or Postroom deliberately
differs, the difference is listed once in ``DEVIATIONS`` (and in docs/compatibility.md):
the schema is loosened at exactly that place, nowhere else.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from starlette.testclient import TestClient

from dnsserver import LocalDnsServer
from postroom.domain.audit import Actor
from postroom.services import Services
from postroom.services import users as user_service
from postroom.services.accounts import ORGANIZATION_ID, Bootstrap

SPEC_DIR = "data/spec/mailtrap-openapi"
SPEC_FILES = (
    "sandbox.openapi.yml",
    "templates.openapi.yml",
    "email-sending.openapi.yml",
    "sandbox-sending.openapi.yml",
    "email-sending-transactional.openapi.yml",
    "email-sending-bulk.openapi.yml",
    "account-management.openapi.yml",
)
# The sending APIs are not account resources: one path family (their own hosts).
SINGLE_FAMILY = {
    "sandbox-sending.openapi.yml",
    "email-sending-transactional.openapi.yml",
    "email-sending-bulk.openapi.yml",
}
# Operations on no single account (the token's accounts; the organization's sub-accounts):
# one path family.
SINGLE_FAMILY_OPERATIONS = {
    "getAllAccounts",
    "getOrganizationSubAccounts",
    "createOrganizationSubAccount",
}
# Every property the account-management spec documents must be in Postroom's answers
# (its schemas require none), except these: (operationId, JSON pointer, why).
ABSENT = [
    (
        "getAccountBillingUsage",
        "/marketing",
        'Postroom has no email marketing product (the spec: "if available")',
    ),
]
COMPLETE = {"account-management.openapi.yml"}
# Operations this test does not cover yet, though Postroom may answer them: other
# features' work (webhooks come with F9) checks them in its own tests.
OUT_OF_SCOPE = {"createWebhook", "listWebhooks", "getWebhook", "updateWebhook", "deleteWebhook"}

# (schema path inside a response, what to allow there, why) — keep docs/compatibility.md
# in step. A path starts with a component schema's name, or with an operationId for a
# schema written inline in that operation's response.
DEVIATIONS: list[tuple[str, dict[str, Any], str]] = [
    *[
        (
            f"{operation}.blacklists_report_info",
            {"$ref": "#/components/schemas/SandboxMessage/properties/blacklists_report_info"},
            "the same report object as showing the message (the spec's own SandboxMessage "
            "and list example); these two inline schemas say boolean",
        )
        for operation in ("updateSandboxEmailMessage", "deleteSandboxEmailMessage")
    ],
    *[
        (
            f"EmailTemplateResponse.{body}",
            {"type": ["string", "null"]},
            "null when the template has no such body (the live service; the SDKs allow it)",
        )
        for body in ("body_html", "body_text")
    ],
    (
        "CompanyInfo.info_level",
        {"type": ["string", "null"], "enum": ["business", "individual", None]},
        "null until set, like every other company info field (the live service)",
    ),
    *[
        (
            f"SendingMessage.{name}",
            {"type": ["object", "null"]},
            "null when the message had none (recorded answers of the live service)",
        )
        for name in ("custom_variables", "template_variables")
    ],
]


@cache
def spec_dir() -> Path | None:
    folder = Path(__file__).resolve().parents[1] / SPEC_DIR
    return folder if folder.is_dir() else None


@cache
def load(name: str) -> dict[str, Any]:
    folder = spec_dir()
    assert folder is not None
    loaded: dict[str, Any] = yaml.safe_load((folder / name).read_text())
    return loaded


def operations() -> list[tuple[str, str, str, str]]:
    """(file, operationId, method, path) of every operation of the files in scope."""
    if spec_dir() is None:
        return []
    found = []
    for name in SPEC_FILES:
        for path, item in load(name)["paths"].items():
            for method, op in item.items():
                if method in ("get", "post", "patch", "put", "delete"):
                    found.append((name, op["operationId"], method.upper(), path))
    return found


# --- from the spec's schema to JSON Schema -------------------------------------------------


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 → JSON Schema: ``nullable`` becomes a null type, examples go."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: _json_schema(v)
        for k, v in node.items()
        if k not in ("nullable", "example", "examples", "x-examples")
    }
    if node.get("nullable"):
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
        elif "$ref" in out:
            out = {"anyOf": [{"$ref": out.pop("$ref")}, {"type": "null"}], **out}
    return out


def _patch(root: dict[str, Any] | None, props: list[str], allowed: dict[str, Any]) -> None:
    node = root
    for prop in props:
        node = None if node is None else node.get("properties", {}).get(prop)
    if node is not None:
        node.clear()
        node.update(allowed)


def _with_deviations(components: dict[str, Any]) -> dict[str, Any]:
    patched = copy.deepcopy(components)
    for where, allowed, _ in DEVIATIONS:
        schema, *props = where.split(".")
        _patch(patched.get("schemas", {}).get(schema), props, allowed)
    return patched


def _operation_deviations(operation: str, schema: dict[str, Any]) -> dict[str, Any]:
    patched = copy.deepcopy(schema)
    for where, allowed, _ in DEVIATIONS:
        first, *props = where.split(".")
        if first == operation:
            _patch(patched, props, allowed)
    return patched


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def response_spec(name: str, method: str, path: str, status: int) -> dict[str, Any] | None:
    doc = load(name)
    responses = doc["paths"][path][method.lower()]["responses"]
    found = responses.get(str(status))
    return None if found is None else _resolve(doc, found)


def validate(name: str, schema: dict[str, Any], instance: Any, operation: str = "") -> list[str]:
    components = _with_deviations(_json_schema(load(name).get("components", {})))
    own = _operation_deviations(operation, _json_schema(schema))
    root = {**own, "components": components}
    errors = jsonschema_rs.validator_for(root).iter_errors(instance)
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in errors][:5]


def _absent(doc: dict[str, Any], schema: Any, instance: Any, where: str) -> list[str]:
    """JSON pointers of the properties ``schema`` documents that ``instance`` lacks."""
    if not isinstance(schema, dict):
        return []
    schema = _resolve(doc, schema)
    found: list[str] = []
    if isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            found += _absent(doc, schema["items"], item, f"{where}/{index}")
    if isinstance(instance, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in instance:
                found.append(f"{where}/{name}")
            elif instance[name] is not None:
                found += _absent(doc, sub, instance[name], f"{where}/{name}")
    return found


def undocumented_absence(name: str, operation: str, schema: dict[str, Any], body: Any) -> list[str]:
    """Documented properties missing from ``body``, less the ones ``ABSENT`` explains."""
    allowed = {pointer for op, pointer, _ in ABSENT if op == operation}
    return [p for p in _absent(load(name), schema, body, "") if p not in allowed]


# --- the two families ------------------------------------------------------------------------

_ACCOUNT_NAMES = (("/api/sandboxes", "/inboxes"), ("/api/domains", "/sending_domains"))


def account_form(path: str, account_id: int) -> str:
    """The SDKs' spelling of a spec path."""
    rest = path.removeprefix("/api")
    for spec_name, sdk_name in _ACCOUNT_NAMES:
        if path.startswith(spec_name):
            rest = sdk_name + path.removeprefix(spec_name)
    rest = rest.replace("/sandboxes", "/inboxes")
    return f"/api/accounts/{account_id}{rest}"


def answered(client: TestClient, method: str, path: str) -> bool:
    """Whether the application declares ``method path`` (read off its OpenAPI document)."""
    probe = re.sub(r"\{[^}]+\}", "1", path)
    for declared, item in client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        if method.lower() in item:
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(declared))
            if re.fullmatch(pattern, probe):
                return True
    return False


# --- the world the scenarios act on -------------------------------------------------------------


@dataclass
class World:
    client: TestClient
    boot: Bootstrap
    services: Services

    def post(self, url: str, body: Any, status: int = 200) -> Any:
        answer = self.client.post(url, json=body)
        assert answer.status_code == status, (url, answer.text)
        return answer.json()

    def project(self) -> int:
        return int(self.post("/api/projects", {"project": {"name": "Conformance"}})["id"])

    def sandbox(self) -> int:
        url = f"/api/projects/{self.project()}/sandboxes"
        return int(self.post(url, {"sandbox": {"name": "Conformance box"}})["id"])

    def message(self, sandbox: int | None = None) -> tuple[int, int]:
        sandbox = sandbox or self.boot.inbox_id
        body = {
            "from": {"email": "shop@example.com", "name": "Shop"},
            "to": [{"email": "buyer@example.org", "name": "Buyer"}],
            "subject": "Your order",
            "text": "Thanks for your order.",
            "html": '<div style="display:flex"><p>Thanks</p><img src="cid:logo"></div>',
            "attachments": [
                {"content": "aGVsbG8=", "filename": "a.txt", "type": "text/plain"},
                {"content": "aGVsbG8=", "filename": "logo.png", "type": "image/png",
                 "disposition": "inline", "content_id": "logo"},
            ],
        }  # fmt: skip
        sent = self.post(f"/api/send/{sandbox}", body)
        return sandbox, int(sent["message_ids"][0])

    def template(self) -> int:
        body = {"email_template": {"name": "T", "subject": "S", "category": "c", "body_text": "x"}}
        return int(self.post("/api/email_templates", body, 201)["id"])

    def new_domain_name(self) -> str:
        return f"d{os.urandom(4).hex()}.example.com"

    def domain(self) -> int:
        body = {"domain": {"domain_name": self.new_domain_name()}}
        return int(self.post("/api/domains", body)["id"])

    def token(self) -> int:
        """A new API token with admin access to the account; its id."""
        level = {"resource_type": "account", "resource_id": self.boot.account_id}
        body = {"name": "Conformance", "resources": [level | {"access_level": 100}]}
        return int(self.post("/api/api_tokens", body)["id"])

    def token_access(self) -> int:
        """The account access of a new token (tokens' accesses are not listed)."""
        token_id = self.token()
        query = (
            "SELECT id FROM account_accesses WHERE specifier_type = 'ApiToken'"
            f" AND specifier_id = {token_id}"
        )
        return int(
            self.services.db.read_sync(lambda conn: conn.exec_driver_sql(query).scalar_one())
        )

    def invitation(self) -> int:
        """The account access of a new invitation."""
        email = f"i{os.urandom(3).hex()}@example.org"
        self.services.db.write_sync(
            user_service.invite(self.services, self.boot.account_id, email, "viewer", Actor.cli())
        )
        listed = self.client.get("/api/account_accesses").json()
        return next(int(a["id"]) for a in listed if a["specifier"].get("email") == email)

    def sent_log(self) -> str:
        body = {
            "from": {"email": "shop@example.com"},
            "to": [{"email": "buyer@example.org"}],
            "subject": "Log me",
            "text": "x",
        }
        return str(self.post("/api/send", body)["message_ids"][0])


YEAR = "start_date=2026-01-01&end_date=2026-12-31"
Call = tuple[dict[str, Any], Any]  # path parameters, JSON body (None: no body)
Scenario = Callable[[World], Call]


def _msg(world: World) -> dict[str, Any]:
    sandbox, message = world.message()
    return {"sandbox_id": sandbox, "message_id": message}


def _own_msg(world: World) -> dict[str, Any]:
    sandbox, message = world.message(world.sandbox())
    return {"sandbox_id": sandbox, "message_id": message}


def _attachment(world: World) -> dict[str, Any]:
    return {**_msg(world), "attachment_id": 1}


SCENARIOS: dict[str, Scenario] = {
    # sandbox.openapi.yml
    "getSandboxes": lambda w: ({}, None),
    "createProject": lambda w: ({}, {"project": {"name": "Created"}}),
    "getProjects": lambda w: ({}, None),
    "getProject": lambda w: ({"project_id": w.project()}, None),
    "updateProject": lambda w: ({"project_id": w.project()}, {"project": {"name": "Renamed"}}),
    "deleteProject": lambda w: ({"project_id": w.project()}, None),
    "createSandbox": lambda w: ({"project_id": w.project()}, {"sandbox": {"name": "New box"}}),
    "getSandboxAttributes": lambda w: ({"sandbox_id": w.sandbox()}, None),
    "deleteSandbox": lambda w: ({"sandbox_id": w.sandbox()}, None),
    "updateSandbox": lambda w: ({"sandbox_id": w.sandbox()}, {"sandbox": {"name": "Renamed"}}),
    "cleanSandbox": lambda w: ({"sandbox_id": w.sandbox()}, None),
    "markAsReadSandbox": lambda w: ({"sandbox_id": w.sandbox()}, None),
    "resetSandboxCredentials": lambda w: ({"sandbox_id": w.sandbox()}, None),
    "enableSandboxEmailAddresses": lambda w: ({"sandbox_id": w.sandbox()}, None),
    "resetEmailUserNamePerSandbox": lambda w: ({"sandbox_id": w.sandbox()}, None),
    "showSandboxEmailMessage": lambda w: (_msg(w), None),
    "updateSandboxEmailMessage": lambda w: (_msg(w), {"message": {"is_read": "true"}}),
    "deleteSandboxEmailMessage": lambda w: (_own_msg(w), None),
    "getSandboxEmailMessage": lambda w: ({"sandbox_id": w.message()[0]}, None),
    "forwardSandboxEmailMessage": lambda w: (_msg(w), {"email": "qa@example.org"}),
    "getSandboxEmailMessageSpamReport": lambda w: (_msg(w), None),
    "getSandboxEmailMessageHTMLAnalysis": lambda w: (_msg(w), None),
    "getSandboxEmailMessageBodyAsTxt": lambda w: (_msg(w), None),
    "getSandboxEmailMessageBodyAsRaw": lambda w: (_msg(w), None),
    "getSandboxEmailMessageBodyAsHtmlSource": lambda w: (_msg(w), None),
    "getSandboxEmailMessageBodyAsHtml": lambda w: (_msg(w), None),
    "getSandboxEmailMessageBodyAsEml": lambda w: (_msg(w), None),
    "getMailHeadersOfEmailMessage": lambda w: (_msg(w), None),
    "getSandboxMessageAttachments": lambda w: (_msg(w), None),
    "getSandboxMessageAttachment": lambda w: (_attachment(w), None),
    # templates.openapi.yml
    "emailTemplates": lambda w: ({}, None),
    "createEmailTemplate": lambda w: (
        {},
        {"email_template": {"name": "N", "subject": "S", "category": "c", "body_html": "<b>x</b>"}},
    ),
    "getEmailTemplate": lambda w: ({"email_template_id": w.template()}, None),
    "updateEmailTemplate": lambda w: (
        {"email_template_id": w.template()},
        {"email_template": {"name": "Renamed"}},
    ),
    "deleteEmailTemplate": lambda w: ({"email_template_id": w.template()}, None),
    # email-sending.openapi.yml
    "createDomain": lambda w: ({}, {"domain": {"domain_name": w.new_domain_name()}}),
    "getDomains": lambda w: ({}, None),
    "getDomain": lambda w: ({"domain_id": w.domain()}, None),
    "deleteDomain": lambda w: ({"domain_id": w.domain()}, None),
    "updateDomain": lambda w: (
        {"domain_id": w.domain()},
        {"domain": {"open_tracking_enabled": True}},
    ),
    "sendDomainSetupInstructions": lambda w: (
        {"domain_id": w.domain()},
        {"email": "ops@example.org"},
    ),
    "getDomainCompanyInfo": lambda w: ({"domain_id": w.domain()}, None),
    "createDomainCompanyInfo": lambda w: (
        {"domain_id": w.domain()},
        {"company_info": {"name": "Shop", "address": "1 Main St", "city": "Springfield",
                          "country": "US", "zip_code": "12345",
                          "website_url": "https://shop.example.com"}},
    ),  # fmt: skip
    "updateDomainCompanyInfo": lambda w: (
        {"domain_id": w.domain()},
        {"company_info": {"name": "Shop Ltd"}},
    ),
    "getSuppressions": lambda w: ({}, None),
    "createSuppression": lambda w: (
        {},
        {"email": f"s{os.urandom(3).hex()}@example.org", "domain_id": w.domain(),
         "sending_stream": "transactional"},
    ),  # fmt: skip
    "getAccountSendingStats": lambda w: ({"?": YEAR}, None),
    "getAccountSendingStatsByDomains": lambda w: ({"?": YEAR}, None),
    "getAccountSendingStatsByCategories": lambda w: ({"?": YEAR}, None),
    "getAccountSendingStatsByEmailServiceProviders": lambda w: ({"?": YEAR}, None),
    "getAccountSendingStatsByDate": lambda w: ({"?": YEAR}, None),
    "listEmailLogs": lambda w: ({}, None),
    "getEmailLogMessage": lambda w: ({"sending_message_id": w.sent_log()}, None),
}  # fmt: skip


MAIL = {
    "from": {"email": "shop@example.com", "name": "Shop"},
    "to": [{"email": "buyer@example.org"}],
    "subject": "Conformance",
    "text": "Hello",
    "html": "<p>Hello</p>",
    "category": "conformance",
}
BATCH = {"base": {k: v for k, v in MAIL.items() if k != "to"}, "requests": [{"to": MAIL["to"]}]}
BULK_HOST = {"@host": "bulk.localhost"}  # the bulk stream, as its own host name selects
# Operations named alike in several files: "<file>:<operationId>".
SCENARIOS.update(
    {
        "sandbox-sending.openapi.yml:sendEmail": lambda w: (
            {"sandbox_id": w.boot.inbox_id},
            MAIL,
        ),
        "sandbox-sending.openapi.yml:batchSendEmail": lambda w: (
            {"sandbox_id": w.boot.inbox_id},
            BATCH,
        ),
        "email-sending-transactional.openapi.yml:sendEmail": lambda w: ({}, MAIL),
        "email-sending-transactional.openapi.yml:batchSendEmail": lambda w: ({}, BATCH),
        "email-sending-bulk.openapi.yml:sendBulkEmail": lambda w: (dict(BULK_HOST), MAIL),
        "email-sending-bulk.openapi.yml:batchSendEmail": lambda w: (dict(BULK_HOST), BATCH),
    }
)


ORGANIZATION = {"organization_id": ORGANIZATION_ID}
SCENARIOS.update(
    {
        # account-management.openapi.yml
        "getAllAccounts": lambda w: ({}, None),
        "getAllUsersInAccount": lambda w: ({}, None),
        "deleteAccountAccessById": lambda w: ({"account_access_id": w.invitation()}, None),
        "updateUserPermissions": lambda w: (
            {"account_access_id": w.token_access()},
            {
                "permissions": [
                    {
                        "resource_id": str(w.boot.account_id),
                        "resource_type": "account",
                        "access_level": "viewer",
                    }
                ]
            },
        ),  # fmt: skip
        "getResources": lambda w: ({}, None),
        "listApiTokens": lambda w: ({}, None),
        "createApiToken": lambda w: (
            {},
            {
                "name": "Created",
                "resources": [
                    {
                        "resource_type": "account",
                        "resource_id": w.boot.account_id,
                        "access_level": 10,
                    }
                ],
            },
        ),  # fmt: skip
        "getApiToken": lambda w: ({"id": w.token()}, None),
        "deleteApiToken": lambda w: ({"id": w.token()}, None),
        "resetApiToken": lambda w: ({"id": w.token()}, None),
        "getAccountBillingUsage": lambda w: ({}, None),
        "getOrganizationSubAccounts": lambda w: (dict(ORGANIZATION), None),
        "createOrganizationSubAccount": lambda w: (
            dict(ORGANIZATION),
            {"account": {"name": f"Sub {os.urandom(3).hex()}"}},
        ),
    }
)


def _suppression(world: World) -> Call:
    made = world.post(
        "/api/suppressions",
        {"email": f"d{os.urandom(3).hex()}@example.org", "sending_stream": "transactional"},
        201,
    )
    return {"suppression_id": made["data"]["id"]}, None


SCENARIOS["deleteSuppression"] = _suppression


# --- the test ----------------------------------------------------------------------------------


def _fill(path: str, params: dict[str, Any]) -> str:
    query = params.pop("?", None)
    params.pop("@host", None)
    filled = re.sub(r"\{([^}]+)\}", lambda m: str(params[m[1]]), path)
    return f"{filled}?{query}" if query else filled


def _media(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


@pytest.fixture
def world(
    client: TestClient,
    boot: Bootstrap,
    services: Services,
    spamd: int,
    dns_server: LocalDnsServer,
) -> Iterator[World]:
    services.settings.sandbox.spamd_port = spamd
    # Blocklist checks on, against a loopback name server that lists nothing.
    services.settings.sandbox.blacklist_checks = True
    services.settings.dns.server = dns_server.address
    yield World(client, boot, services)
    # The checks reads started finish before the client's event loop closes.
    deadline = time.monotonic() + 10
    while services.background and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("spec", "operation", "method", "path"), operations())
def test_operation_conforms_in_both_families(
    world: World, spec: str, operation: str, method: str, path: str
) -> None:
    if operation in OUT_OF_SCOPE:
        pytest.skip(f"{operation}: checked by its own feature's tests")
    if not answered(world.client, method, path):
        pytest.skip(f"{operation} ({method} {path}): not answered by Postroom yet")
    scenario = SCENARIOS.get(f"{spec}:{operation}") or SCENARIOS.get(operation)
    assert scenario is not None, f"{operation} is answered but has no conformance scenario"
    single = spec in SINGLE_FAMILY or operation in SINGLE_FAMILY_OPERATIONS
    families = ("spec",) if single else ("spec", "account")
    for family in families:
        params, body = scenario(world)
        host = params.get("@host")
        url = _fill(path, dict(params))
        if family == "account":
            url = account_form(url, world.boot.account_id)
        headers = {"Host": host} if host else {}
        answer = world.client.request(method, url, json=body, headers=headers)
        assert 200 <= answer.status_code < 300, (family, url, answer.status_code, answer.text)
        expected = response_spec(spec, method, path, answer.status_code)
        assert expected is not None, (family, url, f"status {answer.status_code} not in the spec")
        content = expected.get("content") or {}
        if not content:
            assert not answer.content, (family, url, "the spec answers no body here")
            continue
        media = _media(answer.headers.get("content-type", ""))
        assert media in content, (family, url, media, list(content))
        schema = content[media].get("schema")
        if media == "application/json" and schema is not None:
            errors = validate(spec, schema, answer.json(), operation)
            assert not errors, (family, url, errors)
            if spec in COMPLETE:
                absent = undocumented_absence(spec, operation, schema, answer.json())
                assert not absent, (family, url, "documented but absent", absent)


def test_the_specs_are_in_the_checkout() -> None:
    assert spec_dir() is not None, f"tests/{SPEC_DIR} is missing"
    assert len(operations()) > 50


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_sandbox_operation_is_answered(client: TestClient) -> None:
    if spec_dir() is None:
        pytest.fail(f"tests/{SPEC_DIR} is missing")
    missing = [
        (op, method, path)
        for spec, op, method, path in operations()
        if spec == "sandbox.openapi.yml" and not answered(client, method, path)
    ]
    assert not missing
