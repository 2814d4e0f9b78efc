"""Stats by domain and email logs answer the domain under both names, in both path families.

The SDKs (the account-scoped form) read ``sending_domain_id``; the contract's current
OpenAPI (``/api/stats/domains``, ``/api/email_logs``) says ``domain_id``. Both keys are
answered everywhere (the SDKs ignore extra keys), both filter spellings are taken, and
the answers are validated against the contract's schemas (tests/data/spec, copied from
the official OpenAPI; a test checks the copy against shared/spec when it is there).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from starlette.testclient import TestClient

from logseed import Seeded, seed_sync
from postroom.clock import FrozenClock
from postroom.services import Services, rollups
from postroom.services.accounts import Bootstrap

RANGE = "start_date=2026-03-10&end_date=2026-03-11"
SCHEMAS = json.loads((Path(__file__).parents[1] / "data/spec/domain_id_schemas.json").read_text())


@pytest.fixture
def seeded(services: Services, boot: Bootstrap) -> Seeded:
    services.settings.insights.stats_settle_seconds = 0
    data = seed_sync(services, boot.account_id, FrozenClock())
    asyncio.run(rollups.consume(services))
    return data


def _nullable(schema: Any) -> Any:
    """OpenAPI 3.0's ``nullable`` as JSON Schema; custom_variables and template_variables
    may be null too (recorded answers, spec §4.6)."""
    if isinstance(schema, list):
        return [_nullable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _nullable(v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    for name in ("custom_variables", "template_variables"):
        prop = out.get("properties", {}).get(name)
        if prop is not None and prop.get("type") == "object":
            prop["type"] = ["object", "null"]
    return out


def _validate(name: str, instance: Any) -> None:
    components = {k: _nullable(v) for k, v in SCHEMAS.items() if k != "source"}
    root = {**components[name], "components": {"schemas": components}}
    errors = [e.message for e in jsonschema_rs.validator_for(root).iter_errors(instance)]
    assert not errors, (name, errors[:5])
    # Every field the contract names is answered (its schemas require few of them).
    missing = set(components[name].get("properties", {})) - set(instance)
    assert not missing, (name, missing)


def test_stats_by_domain_answers_both_keys_in_both_families(
    client: TestClient, seeded: Seeded
) -> None:
    for path in (f"/api/accounts/{seeded.account_id}/stats/domains", "/api/stats/domains"):
        items = client.get(f"{path}?{RANGE}").json()
        assert items, path
        for item in items:
            assert item["domain_id"] == item["sending_domain_id"]
            _validate("stats_domains_item", item)
        assert seeded.shop_id in {item["domain_id"] for item in items}
        for name in ("domain_ids[]", "sending_domain_ids[]"):
            only = client.get(f"{path}?{RANGE}&{name}={seeded.shop_id}").json()
            assert [item["domain_id"] for item in only] == [seeded.shop_id], (path, name)


def test_email_logs_answer_both_keys_in_both_families(client: TestClient, seeded: Seeded) -> None:
    for path in (f"/api/accounts/{seeded.account_id}/email_logs", "/api/email_logs"):
        page = client.get(path).json()
        _validate("EmailLogsListResponse", page)
        for message in page["messages"]:
            assert message["domain_id"] == message["sending_domain_id"]
        detail = client.get(f"{path}/{page['messages'][0]['message_id']}").json()
        assert detail["domain_id"] == detail["sending_domain_id"]
        _validate("SendingMessage", detail)


def test_email_logs_take_both_filter_names(client: TestClient, seeded: Seeded) -> None:
    url = f"/api/accounts/{seeded.account_id}/email_logs"
    found = {}
    for name in ("domain_id", "sending_domain_id"):
        query = f"filters[{name}][operator]=equal&filters[{name}][value]={seeded.shop_id}"
        page = client.get(f"{url}?{query}").json()
        assert page["total_count"] > 0
        assert {m["domain_id"] for m in page["messages"]} == {seeded.shop_id}
        found[name] = [m["message_id"] for m in page["messages"]]
    assert found["domain_id"] == found["sending_domain_id"]
    bad = client.get(f"{url}?filters[domain_id][operator]=contain&filters[domain_id][value]=1")
    assert bad.status_code == 422


def test_the_copied_schemas_match_the_contract() -> None:
    spec = next(
        (
            parent / "shared/spec/mailtrap-openapi/email-sending.openapi.yml"
            for parent in Path(__file__).resolve().parents
            if (parent / "shared/spec/mailtrap-openapi/email-sending.openapi.yml").exists()
        ),
        None,
    )
    if spec is None:
        pytest.skip("shared/spec is not beside this checkout")
    import yaml

    doc = yaml.safe_load(spec.read_text())
    schemas = doc["components"]["schemas"]
    stats = doc["paths"]["/api/stats/domains"]["get"]["responses"]["200"]["content"]
    item = stats["application/json"]["schema"]["items"]
    assert set(item["properties"]) == set(SCHEMAS["stats_domains_item"]["properties"])
    for name in ("SendingStats", "EmailLogsListResponse", "SendingMessage"):
        assert set(schemas[name]["properties"]) == set(SCHEMAS[name]["properties"]), name
