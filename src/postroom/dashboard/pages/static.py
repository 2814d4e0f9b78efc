"""The dashboard's static files (vendored htmx, our script and stylesheet), by a fixed
list of names: nothing else on disk is reachable, and each answers with nosniff."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from postroom.dashboard.web import HERE, security_headers

router = APIRouter()

FILES = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "htmx.LICENSE.txt": "text/plain; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
_cache: dict[str, bytes] = {}


@router.get("/ui/static/{name}")
async def static_file(name: str) -> Response:
    kind = FILES.get(name)
    if kind is None:
        return security_headers(Response("not found", status_code=404, media_type="text/plain"))
    body = _cache.get(name)
    if body is None:
        body = _cache[name] = (HERE / "static" / name).read_bytes()
    response = security_headers(Response(body, media_type=kind))
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
