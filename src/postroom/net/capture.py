"""Run an ASGI app and keep what is recorded about the request afterwards: the status of
the answer and the first bytes of the request body.

The API's and the dashboard's audit trails (``api/audittrail.py``,
``dashboard/audit.py``) record a change only once it has succeeded, with what was asked;
both wrap the app the same way, here.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def call_capturing(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, keep: int
) -> tuple[int, bytes]:
    """Call ``app``; answer the response status (0 if none was sent) and up to ``keep``
    bytes of the request body as the app read it."""
    body = bytearray()
    status = 0

    async def receiving() -> Message:
        message = await receive()
        if message["type"] == "http.request" and len(body) < keep:
            body.extend(message.get("body", b"")[: keep - len(body)])
        return message

    async def sending(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        await send(message)

    await app(scope, receiving, sending)
    return status, bytes(body)
