"""Requests refused before routing: what no route can take.

A query string holding an encoded NUL (``%00``) is refused with 400 in the route's error
family: NUL is not text, and PostgreSQL refuses it in every text value it is compared
with (a search, an email filter), so it would otherwise fail at the database. A pure
ASGI wrapper: one bytes search per request.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from postroom.api.errors import is_sending_path
from postroom.api.responses import general_error, sending_error

NUL_IN_QUERY = "NUL characters are not allowed in the query"


class RefuseNulQuery:
    """ASGI middleware: 400 for a query string with ``%00``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and b"%00" in scope.get("query_string", b""):
            path = str(scope.get("path", ""))
            if is_sending_path(path):
                response = sending_error(400, [NUL_IN_QUERY])
            else:
                response = general_error(400, NUL_IN_QUERY)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
