"""How an email's HTML is shown: as its own document, under a CSP that runs nothing.

The page embeds it in ``<iframe sandbox>`` with neither ``allow-scripts`` nor
``allow-same-origin``; the response itself also carries ``Content-Security-Policy:
sandbox`` (so opened directly, outside the iframe, it is still a scriptless opaque
origin), ``script-src 'none'``, no connections, no forms, no frames, no plugins. Images
load only from ``data:`` and ``cid:`` unless the reader turns remote images on (then
http and https too); styles inline in the mail are allowed, as mail is written so.
Attachments are served as downloads (``Content-Disposition: attachment``, nosniff).
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import HTMLResponse, Response

from postroom.dashboard.web import security_headers


def csp(remote_images: bool) -> str:
    images = "data: cid:" + (" https: http:" if remote_images else "")
    return (
        "sandbox; default-src 'none'; script-src 'none'; object-src 'none'; "
        f"style-src 'unsafe-inline'; img-src {images}; font-src data:; media-src 'none'; "
        "connect-src 'none'; form-action 'none'; frame-src 'none'; base-uri 'none'; "
        "frame-ancestors 'self'"
    )


def html(body: str, *, remote_images: bool) -> Response:
    shown = (
        body or "<p style='font-family:sans-serif;color:#666'>This message has no HTML part.</p>"
    )
    response = HTMLResponse(shown)
    return security_headers(response, csp(remote_images))


def missing() -> Response:
    response = HTMLResponse("<p>The message body is no longer stored.</p>", status_code=404)
    return security_headers(response, csp(False))


def download(content: bytes, filename: str) -> Response:
    """An attachment as a download, never rendered by the browser."""
    name = filename or "attachment"
    # ASCII fallback plus RFC 6266/5987 UTF-8 name; quotes and control characters dropped.
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name)
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
    response = Response(
        content,
        media_type="application/octet-stream",
        headers={"Content-Disposition": disposition},
    )
    return security_headers(response, "sandbox; default-src 'none'")
