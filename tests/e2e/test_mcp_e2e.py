"""``postroom mcp``: a real MCP client session (the ``mcp`` package's client) with the
server started as a subprocess over stdio, and over streamable HTTP, against a running
``postroom serve`` over HTTPS with a private CA (trusted through ``SSL_CERT_FILE``).

The tools offered follow the token's scopes: a read-only token sees no sending or
managing tool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from server import Instance, cli_env, free_ports, run_cli

READ_TOOLS = {
    "list_sandbox_inboxes",
    "list_sandbox_messages",
    "read_sandbox_message",
    "search_email_logs",
    "get_email_log",
    "get_sending_stats",
    "list_templates",
    "get_template",
    "preview_template",
    "list_suppressions",
    "get_domain_status",
}
SEND_TOOLS = {"send_email", "send_test_email"}
ADMIN_TOOLS = {
    "create_template",
    "update_template",
    "delete_template",
    "add_suppression",
    "remove_suppression",
}


def _env(instance: Instance, token: str) -> dict[str, str]:
    env = cli_env(
        {
            "POSTROOM_URL": instance.server.url(),
            "POSTROOM_TOKEN": token,
            "SSL_CERT_FILE": str(instance.tls.ca_pem),
        }
    )
    env.pop("REQUESTS_CA_BUNDLE", None)
    return env


def _session(
    instance: Instance, token: str, body: Callable[[ClientSession], Awaitable[None]]
) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "postroom", "mcp"], env=_env(instance, token)
    )

    async def main(errlog: TextIO) -> None:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await body(session)

    with open(os.devnull, "w") as errlog:
        anyio.run(main, errlog)


async def _call(session: ClientSession, name: str, arguments: dict[str, Any]) -> Any:
    result = await session.call_tool(name, arguments)
    text = "".join(getattr(block, "text", "") for block in result.content)
    assert not result.is_error, f"{name}: {text}"
    if result.structured_content is not None:
        content = result.structured_content
        # A tool returning a list or a scalar is wrapped as {"result": ...}.
        return content.get("result", content) if isinstance(content, dict) else content
    return json.loads(text)


def test_admin_token_sends_a_test_mail_and_reads_it_back(instance: Instance) -> None:
    seen: dict[str, Any] = {}

    async def body(session: ClientSession) -> None:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        seen["tools"] = set(tools)
        assert all(tools[n].description for n in tools)
        captured = await _call(
            session,
            "send_test_email",
            {
                "from_email": "app@example.com",
                "to": ["mcp.user@example.org"],
                "subject": "Your receipt",
                "text": "Thanks! Details: https://shop.example.com/orders/7",
                "html": '<p>Thanks! <a href="https://shop.example.com/orders/7">Order</a></p>',
            },
        )
        assert captured["subject"] == "Your receipt"
        assert captured["to"] == "mcp.user@example.org"
        assert "Thanks!" in captured["text"]
        assert captured["links"] == ["https://shop.example.com/orders/7"]
        listed = await _call(session, "list_sandbox_messages", {"search": "mcp.user@"})
        assert [m["id"] for m in listed] == [captured["id"]]
        again = await _call(session, "read_sandbox_message", {"message_id": captured["id"]})
        assert again["text"] == captured["text"]

        template = await _call(
            session,
            "create_template",
            {"name": "Hello", "subject": "Hello {{name}}", "body_text": "Hi {{name}}"},
        )
        preview = await _call(
            session, "preview_template", {"template_id": template["id"],
                                           "variables": {"name": "Ada"}}
        )  # fmt: skip
        assert "Hello Ada" in json.dumps(preview)
        names = [t["name"] for t in await _call(session, "list_templates", {})]
        assert "Hello" in names

        await _call(session, "add_suppression", {"email": "gone@example.org"})
        rows = await _call(session, "list_suppressions", {"email": "gone@example.org"})
        assert [r["email"] for r in rows] == ["gone@example.org"]
        await _call(session, "remove_suppression", {"suppression_id": rows[0]["id"]})
        assert await _call(session, "list_suppressions", {"email": "gone@example.org"}) == []

        # send_email (the server's default mode captures it), then the logs find it.
        sent = await _call(
            session,
            "send_email",
            {"from_email": "app@example.com", "to": ["logged@example.org"],
             "subject": "Logged via MCP", "text": "hello", "category": "mcp"},
        )  # fmt: skip
        (message_id,) = sent["message_ids"]
        page = await _call(session, "search_email_logs", {"to": "logged@example.org"})
        assert [m["message_id"] for m in page["messages"]] == [message_id]
        page = await _call(session, "search_email_logs", {"subject_contains": "via MCP",
                                                          "category": "mcp"})  # fmt: skip
        assert [m["message_id"] for m in page["messages"]] == [message_id]
        entry = await _call(session, "get_email_log", {"message_id": message_id})
        assert entry["to"] == "logged@example.org" and entry["subject"] == "Logged via MCP"

        stats = await _call(session, "get_sending_stats", {})
        assert "delivery_count" in json.dumps(stats)
        assert await _call(session, "get_domain_status", {}) == []
        # An error from the API reaches the assistant as a tool error with its message.
        failed = await session.call_tool("get_template", {"template_id": 999999})
        assert failed.is_error

    _session(instance, instance.token, body)
    assert seen["tools"] == READ_TOOLS | SEND_TOOLS | ADMIN_TOOLS


def test_a_read_token_gets_read_only_tools_and_a_send_token_the_send_tools(
    instance: Instance,
) -> None:
    reader = run_cli(
        "token",
        "create",
        "--name",
        "mcp-read",
        "--scope",
        "read",
        data_dir=instance.server.data_dir,
    ).strip()
    sender = run_cli(
        "token", "create", "--name", "mcp-send", "--scope", "read", "--scope", "send",
        data_dir=instance.server.data_dir,
    ).strip()  # fmt: skip
    found: dict[str, set[str]] = {}

    def tools_of(name: str) -> Callable[[ClientSession], Awaitable[None]]:
        async def body(session: ClientSession) -> None:
            found[name] = {t.name for t in (await session.list_tools()).tools}

        return body

    _session(instance, reader, tools_of("read"))
    _session(instance, sender, tools_of("send"))
    assert found["read"] == READ_TOOLS
    assert found["send"] == READ_TOOLS | SEND_TOOLS


def test_streamable_http_transport(instance: Instance, tmp_path: Path) -> None:
    (port,) = free_ports(1)
    log = (tmp_path / "mcp.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom", "mcp", "--transport", "http", "--port", str(port)],
        env=_env(instance, instance.token), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, (tmp_path / "mcp.log").read_text()
                assert time.monotonic() < deadline, "postroom mcp --transport http not up"
                time.sleep(0.1)

        async def main() -> list[dict[str, Any]]:
            async with (
                streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                names = {t.name for t in (await session.list_tools()).tools}
                assert names == READ_TOOLS | SEND_TOOLS | ADMIN_TOOLS
                inboxes: list[dict[str, Any]] = await _call(session, "list_sandbox_inboxes", {})
                return inboxes

        inboxes = anyio.run(main)
        assert [i["id"] for i in inboxes] == [instance.inbox_id]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
