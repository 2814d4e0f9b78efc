"""The API's ``headers``: one rule for Postroom's own headers, caps on count and size,
and the client's Message-ID and Date kept (and followed downstream: the stored message,
email logs, idempotent retries, DKIM).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from postroom.domain.headers import IGNORED_HEADERS, KEPT_HEADERS, RESERVED_HEADERS
from postroom.services import Services
from postroom.services.accounts import Bootstrap
from postroom.storage.tables import message_bodies, messages


def body(**headers: str) -> dict[str, Any]:
    return {
        "from": {"email": "app@example.com"},
        "to": [{"email": "ann@example.org"}],
        "subject": "Hello",
        "text": "Hi.",
        "headers": headers,
    }


def stored(services: Services, message_id: str) -> tuple[bytes, str]:
    """The raw message and its rfc_message_id."""

    def run(conn: Any) -> tuple[bytes, str]:
        raw = conn.execute(
            select(message_bodies.c.raw).where(message_bodies.c.message_id == message_id)
        ).scalar()
        rfc = conn.execute(
            select(messages.c.rfc_message_id).where(messages.c.id == message_id)
        ).scalar()
        return bytes(raw), str(rfc)

    return services.db.read_sync(run)


def header_lines(raw: bytes, name: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return [line for line in head.split(b"\r\n") if line.lower().startswith(name.lower() + b":")]


def test_200000_headers_are_refused_with_400(client: TestClient) -> None:
    many = {f"X-N-{i}": "v" for i in range(200_000)}
    response = client.post("/api/send", json=body(**many))
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "errors": ["'headers' must contain at most 1000 fields"],
    }


def test_header_bytes_over_the_limit_are_refused_with_400(client: TestClient) -> None:
    big = {f"X-Long-{i}": "v" * 900 for i in range(120)}
    response = client.post("/api/send", json=body(**big))
    assert response.status_code == 400
    assert response.json()["errors"] == ["'headers' must be at most 102400 bytes"]
    fine = {f"X-Long-{i}": "v" * 900 for i in range(100)}
    assert client.post("/api/send", json=body(**fine)).status_code == 200


def test_one_rule_for_postroom_s_own_headers(services: Services, client: TestClient) -> None:
    # Refused: every reserved name, in any case.
    for name in sorted(RESERVED_HEADERS):
        for spelled in (name, name.upper()):
            response = client.post("/api/send", json=body(**{spelled: "x"}))
            assert response.status_code == 400, spelled
            assert response.json()["errors"] == [f"header '{spelled}' is reserved"]
    # Replaced: the serializer writes its own transfer encoding.
    [name] = IGNORED_HEADERS
    response = client.post("/api/send", json=body(**{name: "x-client-choice"}))
    assert response.status_code == 200
    raw, _ = stored(services, response.json()["message_ids"][0])
    assert b"x-client-choice" not in raw
    assert header_lines(raw, b"Content-Transfer-Encoding") == [b"Content-Transfer-Encoding: 7bit"]
    # Kept: nothing else is Postroom's.
    assert {"message-id", "date"} == KEPT_HEADERS
    assert not (RESERVED_HEADERS | IGNORED_HEADERS) & KEPT_HEADERS


def test_client_message_id_and_date_are_kept(services: Services, client: TestClient) -> None:
    response = client.post(
        "/api/send",
        json=body(**{"Message-ID": " <order-1234.x@shop.example> ",
                     "date": "Tue, 10 Mar 2026 09:00:00 +0100"}),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    [message_id] = response.json()["message_ids"]
    raw, rfc = stored(services, message_id)
    assert rfc == "<order-1234.x@shop.example>"
    assert header_lines(raw, b"Message-ID") == [b"Message-ID: <order-1234.x@shop.example>"]
    assert header_lines(raw, b"Date") == [b"Date: Tue, 10 Mar 2026 09:00:00 +0100"]
    log = client.get(f"/api/email_logs/{message_id}").json()
    assert log["rfc_message_id"] == "<order-1234.x@shop.example>"


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"Message-ID": "order-1234@shop.example"}, "header 'Message-ID' must be one msg-id"),
        ({"Message-ID": "<order 1234@shop.example>"}, "header 'Message-ID' must be one msg-id"),
        ({"Message-ID": "<@shop.example>"}, "header 'Message-ID' must be one msg-id"),
        ({"Message-ID": "<a@b> <c@d>"}, "header 'Message-ID' must be one msg-id"),
        ({"Message-ID": "<" + "a" * 250 + "@b.c>"}, "header 'Message-ID' must be one msg-id"),
        ({"Message-ID": "<a@b>", "message-id": "<c@d>"}, "header 'Message-ID' is given twice"),
        ({"Date": "yesterday"}, "header 'Date' must be an RFC 5322 date"),
        ({"Date": "Tue, 99 Mar 2026 09:00:00 +0000"}, "header 'Date' must be an RFC 5322 date"),
        ({"Date": ""}, "header 'Date' must be an RFC 5322 date"),
        ({"Date": "Tue, 10 Mar 2026 09:00:00 +0000\r\nBcc: x@y"}, "header 'Date' must be"),
    ],
)
def test_malformed_message_id_or_date_is_a_clear_400(
    client: TestClient, headers: dict[str, str], error: str
) -> None:
    response = client.post("/api/send", json=body(**headers))
    assert response.status_code == 400, response.text
    [said] = response.json()["errors"]
    assert said.startswith(error), said


def test_batch_items_keep_their_own_message_ids(services: Services, client: TestClient) -> None:
    response = client.post(
        "/api/batch",
        json={
            "base": {"from": {"email": "app@example.com"}, "subject": "S", "text": "T"},
            "requests": [
                {"to": [{"email": "a@example.org"}], "headers": {"Message-ID": "<one@x.example>"}},
                {"to": [{"email": "b@example.org"}], "headers": {"Message-ID": "bad"}},
            ],
        },
    )
    assert response.status_code == 200
    first, second = response.json()["responses"]
    assert stored(services, first["message_ids"][0])[1] == "<one@x.example>"
    assert second["success"] is False and "Message-ID" in second["errors"][0]


def test_idempotent_retry_with_a_client_message_id_sends_once(
    services: Services, client: TestClient
) -> None:
    request = body(**{"Message-ID": "<retry-1@shop.example>"})
    key = {"Idempotency-Key": "order-1234"}
    first = client.post("/api/send", json=request, headers=key)
    again = client.post("/api/send", json=request, headers=key)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    rows = services.db.read_sync(
        lambda c: c.execute(
            select(messages.c.id).where(messages.c.rfc_message_id == "<retry-1@shop.example>")
        ).all()
    )
    assert len(rows) == 1


def test_dkim_signature_covers_the_client_message_id(
    services: Services, boot: Bootstrap, client: TestClient
) -> None:
    import dkim

    from postroom.domain.dkim import DkimKey, generate_rsa, public_record, sign

    response = client.post(
        "/api/send", json=body(**{"Message-ID": "<signed-1@example.com>",
                                  "Date": "Tue, 10 Mar 2026 09:00:00 +0000"})
    )  # fmt: skip
    raw, _ = stored(services, response.json()["message_ids"][0])
    key = DkimKey("s1", "example.com", "rsa-sha256", generate_rsa())
    signed = sign(raw, [key], timestamp=1_773_133_200)
    signature = signed.split(b"\r\n\r\n", 1)[0].split(b"Message-ID:", 1)[0].lower()
    assert b"message-id" in signature.split(b"h=", 1)[1]
    record = public_record(key.private_key).encode()
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)
