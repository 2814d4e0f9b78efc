"""Every path parameter of every route, walked from the app's route table: an id that
cannot name anything (zero, negative, past 2^63, not a number) is a 404 in the route's
error family, never a 500. A new route is covered without editing this test.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.testclient import TestClient

from postroom.api.errors import is_sending_path

_PARAM = re.compile(r"\{(\w+)\}")
# Values no stored id can have; each must be refused before any storage is asked.
BAD_IDS = ("0", "-1", str(2**63), str(2**64), "99999999999999999999999", "abc", "1.5", "1e3")


def _operations(client: TestClient) -> list[tuple[str, str, dict[str, dict[str, Any]]]]:
    """(method, path template, {path parameter: its schema}) for every documented route."""
    found = []
    for path, item in client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        for method, operation in item.items():
            params = {
                p["name"]: p["schema"] for p in operation.get("parameters", []) if p["in"] == "path"
            }
            assert set(params) == set(_PARAM.findall(path)), (method, path)
            found.append((method.upper(), path, params))
    return found


def _valid(schema: dict[str, Any]) -> str:
    if schema.get("type") == "integer":
        return "1"
    if "enum" in schema:
        return str(schema["enum"][0])
    return "0e6a1c1e-8d9f-4c2b-9a55-1a2b3c4d5e6f"


def test_every_bad_path_id_is_a_404_in_its_family(client: TestClient) -> None:
    checked = 0
    for method, template, params in _operations(client):
        ints = [name for name, schema in params.items() if schema.get("type") == "integer"]
        for name in ints:
            for bad in BAD_IDS:
                values = {n: (bad if n == name else _valid(s)) for n, s in params.items()}
                path = _PARAM.sub(lambda m, v=values: v[m.group(1)], template)
                # The raw-message link's query (its signature is its credential).
                link = {"expires": 1, "signature": "0" * 64}
                response = client.request(method, path, params=link)
                assert response.status_code == 404, (method, path, response.text)
                if is_sending_path(path):
                    assert response.json() == {"success": False, "errors": ["Not Found"]}
                else:
                    assert response.json() == {"error": "Not Found"}, (method, path)
                checked += 1
    # Every family is walked: sending (sandbox send and batch), sandbox, domains, ….
    assert checked > 60 * len(BAD_IDS)


def test_sandbox_send_and_batch_with_huge_inbox_ids_are_404(client: TestClient) -> None:
    body = {
        "from": {"email": "a@example.com"},
        "to": [{"email": "b@example.com"}],
        "subject": "s",
        "text": "t",
    }
    for inbox in (2**63, 2**64, 2**63 - 1):
        sent = client.post(f"/api/send/{inbox}", json=body)
        assert sent.status_code == 404, sent.text
        assert sent.json() == {"success": False, "errors": ["Not Found"]}
        batch = client.post(f"/api/batch/{inbox}", json={"requests": [body]})
        assert batch.status_code == 404, batch.text
