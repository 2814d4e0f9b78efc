"""The tracking listener: open pixel, click redirect, unsubscribe and opt-out pages.

A small Starlette app (no FastAPI: every click waits on it, see ``bench/tracking.py``)
that ``postroom serve`` runs on ``--tracking-port``, over HTTPS with ``--tls-cert``.
Paths carry one opaque token (:mod:`postroom.domain.tracktokens`) and nothing else;
the use cases are :mod:`postroom.services.hits`.

- ``GET|HEAD /o/<token>``: a 1×1 transparent GIF, never cached; the open is recorded.
- ``GET|HEAD /c/<token>``: ``302`` to the link's original URL, read server-side.
  Opens and clicks are committed just after the answer is sent (in the same request
  cycle, :class:`postroom.services.hits.Recording`): a click never waits on a disk.
- ``GET /u/<token>``: a page that asks the person to confirm (a form posting back, no
  script); ``POST /u/<token>``: unsubscribes at once: the RFC 8058 one-click POST
  (``List-Unsubscribe=One-Click``) of mail clients and the confirm form both land here.
  No cookie and no CSRF token: the token itself authorises, and only this unsubscribe.
- ``GET /t/<token>`` / ``POST /t/<token>``: the same for "do not track me".

Anything else, and every token that does not verify, names another kind or an unknown
delivery, answers ``404`` with no redirect. Pages are static HTML with no data from the
request in them, a strict Content-Security-Policy and no referrer.
"""

from __future__ import annotations

import base64
import functools
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from postroom.domain.tracktokens import Kind
from postroom.services import Services, hits

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = "no-store, no-cache, must-revalidate, max-age=0"
PAGE_HEADERS = {
    "Cache-Control": NO_STORE,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:32em;margin:4em auto;padding:0 1em;color:#222}}
button{{font-size:1em;padding:.5em 1.2em}}</style></head>
<body><h1>{title}</h1><p>{text}</p>{form}</body></html>
"""
_FORM = (
    '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
    '<button type="submit">{label}</button></form>'
)
PAGES = {
    "unsubscribe": (
        "Unsubscribe",
        "Stop receiving these emails at this address?",
        "Unsubscribe",
        "You are unsubscribed",
        "This address will not receive these emails any more.",
    ),
    "opt_out": (
        "Stop tracking",
        "Stop recording when you open these emails and which links you follow?",
        "Stop tracking",
        "Tracking stopped",
        "Opens and clicks of these emails will not be recorded for this address.",
    ),
}


def create_tracking_app(services: Services, tracker: hits.Tracker | None = None) -> ASGIApp:
    """The tracking listener's app: opens and clicks on a direct path (:class:`_HitPath`),
    everything else through Starlette."""
    found = tracker or hits.Tracker(services)
    return _HitPath(_pages_app(services, found), found)


def _pages_app(services: Services, found: hits.Tracker) -> Starlette:
    """The unsubscribe and opt-out pages, and the 404 for every other path."""

    async def unsubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "POST":
            done = await found.unsubscribe(token, _facts(request), "one-click")
            return _page("unsubscribe", done=True) if done else _not_found()
        if await found.target(token, Kind.UNSUBSCRIBE, _host(request)) is None:
            return _not_found()
        return _page("unsubscribe", done=False)

    async def opt_out(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "POST":
            done = await found.opt_out(token, _facts(request))
            return _page("opt_out", done=True) if done else _not_found()
        if await found.target(token, Kind.OPT_OUT, _host(request)) is None:
            return _not_found()
        return _page("opt_out", done=False)

    routes = [
        Route("/u/{token}", unsubscribe, methods=["GET", "POST"]),
        Route("/t/{token}", opt_out, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _handler, 405: _handler})
    # Starlette would answer "/c/x/" (or "/c/x%2F") with a 307 to "/c/x": no path of this
    # listener redirects anywhere but a verified click.
    app.router.redirect_slashes = False
    app.state.services = services
    app.state.tracker = found
    return app


class _HitPath:
    """Opens and clicks straight from the ASGI scope: every click waits on this path, and
    Starlette's request, routing and response objects were a third of a click's time
    (``bench/tracking.py``). Same answers as the Starlette routes it stands in front of:
    the pixel or the ``302`` with the same headers, the hit committed right after the
    answer. A token that leads nowhere is a 404; other paths and methods go to
    Starlette (the unsubscribe and opt-out pages, and 404 for anything else)."""

    def __init__(self, app: Starlette, tracker: hits.Tracker) -> None:
        self.app = app
        self.tracker = tracker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        prefix, token = path[:3], path[3:]
        if (
            prefix not in ("/c/", "/o/")
            or scope["method"] not in ("GET", "HEAD")
            or not token
            or "/" in token
        ):
            await self.app(scope, receive, send)
            return
        facts = _scope_facts(scope)
        if prefix == "/c/":
            hit = await self.tracker.click(token, facts)
            if hit is None or hit.url is None:
                await _answer(send, 404, _NOT_FOUND_HEADERS, _NOT_FOUND)
                return
            await _answer(send, 302, _redirect_headers(hit.url), b"")
        else:
            hit = await self.tracker.open(token, facts)
            if hit is None:
                await _answer(send, 404, _NOT_FOUND_HEADERS, _NOT_FOUND)
                return
            await _answer(send, 200, _PIXEL_HEADERS, GIF)
        await hit.commit()


_NO_STORE = NO_STORE.encode()
_NOT_FOUND = b"Not Found"
_NOT_FOUND_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(_NOT_FOUND)).encode()),
    (b"cache-control", _NO_STORE),
]
_PIXEL_HEADERS = [
    (b"content-type", b"image/gif"),
    (b"content-length", str(len(GIF)).encode()),
    (b"cache-control", _NO_STORE),
]


@functools.lru_cache(maxsize=4096)
def _redirect_headers(url: str) -> list[tuple[bytes, bytes]]:
    # Quoted as Starlette's RedirectResponse quotes it: the stored URL was checked when
    # the link was rewritten, and quoting leaves no CR or LF that could split a header.
    location = quote(url, safe=":/%#?=@[]!$&'()*+,;")
    return [
        (b"location", location.encode("latin-1")),
        (b"content-length", b"0"),
        (b"cache-control", _NO_STORE),
        (b"referrer-policy", b"no-referrer"),
    ]


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _scope_facts(scope: Scope) -> hits.Request:
    host = agent = ""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1")
        elif name == b"user-agent":
            agent = value.decode("latin-1")
    client = scope.get("client")
    return hits.Request(scope["method"], client[0] if client else "", agent, _bare_host(host))


def _host(request: Request) -> str:
    return _bare_host(request.headers.get("host", ""))


def _bare_host(host: str) -> str:
    if host.startswith("["):
        return ""  # an IPv6 literal is never a sending domain's tracking host
    return host.rsplit(":", 1)[0]


def _facts(request: Request) -> hits.Request:
    client = request.client.host if request.client else ""
    agent = request.headers.get("user-agent", "")
    return hits.Request(request.method, client, agent, _host(request))


def _not_found() -> Response:
    return PlainTextResponse("Not Found", status_code=404, headers={"Cache-Control": NO_STORE})


async def _handler(request: Request, exc: Exception) -> Response:
    return _not_found()


def _page(which: str, *, done: bool) -> Response:
    title, text, label, done_title, done_text = PAGES[which]
    if done:
        body = _PAGE.format(title=done_title, text=done_text, form="")
    else:
        body = _PAGE.format(title=title, text=text, form=_FORM.format(label=label))
    return Response(body, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)
