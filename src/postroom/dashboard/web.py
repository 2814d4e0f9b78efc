"""The dashboard's HTTP plumbing: templates, security headers, sessions and CSRF.

* Pages are Jinja2 templates with autoescaping on; the only script is the vendored htmx
  and ``app.js`` (static/), so every page is served under a Content-Security-Policy
  without ``unsafe-inline``: injected markup can neither run nor load script.
* A signed-in user holds a session cookie (F11's sessions, services/users.py): HttpOnly,
  SameSite=Strict, and over HTTPS ``Secure`` with the ``__Host-`` prefix. Over plain
  HTTP (a local install without TLS) the cookie cannot be ``Secure`` or the browser would
  drop it; it is still HttpOnly and SameSite=Strict.
* Every state-changing request carries a CSRF token: an HMAC of the session token (or,
  before sign-in, of a random pre-session cookie) under a key derived from the
  installation secret, compared in constant time, plus an Origin check when the browser
  sends one.
* Roles: owners and admins may change things; a viewer only reads (every action checks
  :attr:`Viewer.can_write`, and the templates hide what a viewer may not do).
* A user with accesses in several accounts acts in one at a time, kept in their session
  (services/users.py ``select_account``): every page reads ``Viewer.account_id`` and
  ``Viewer.role``, resolved from the session and the user's accesses at each request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from postroom import __version__
from postroom.services import Services
from postroom.services import users as user_service

HERE = Path(__file__).parent
CSRF_PURPOSE = "dashboard-csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Pages: only our own files; no inline script or style; frames only from ourselves
# (the sandboxed previews); forms only to ourselves; never framed by another site.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)


def session_cookie(request: Request) -> str:
    """``__Host-`` (Secure) over HTTPS; a plain name over HTTP, where Secure cannot hold."""
    return "__Host-postroom_session" if _https(request) else "postroom_session"


def login_cookie(request: Request) -> str:
    return "__Host-postroom_login" if _https(request) else "postroom_login"


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=_https(request),
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path="/", secure=_https(request), httponly=True, samesite="strict")


# --- who is signed in ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in user, the account they act in, their role there and their CSRF token."""

    user_id: int
    email: str
    name: str
    account_id: int
    account_name: str
    role: str
    csrf: str
    totp_enabled: bool
    # Every account the user may act in (the layout's switcher), this one included.
    accounts: tuple[user_service.Membership, ...] = ()

    @property
    def can_write(self) -> bool:
        return self.role in ("owner", "admin")

    @property
    def actor(self) -> str:
        return f"user:{self.email}"


class NeedLogin(Exception):
    """No live session: the page answers with a redirect to the login form."""


class NotAllowed(Exception):
    """The viewer's role may not do this."""


class BadCsrf(Exception):
    """A state-changing request without this session's CSRF token, or from elsewhere."""


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def csrf_for(services: Services, seed: str) -> str:
    key = services.get_sealer().derive(CSRF_PURPOSE)
    return hmac.new(key, seed.encode(), hashlib.sha256).hexdigest()


async def viewer_of(request: Request) -> Viewer:
    """The signed-in user of ``request`` (raises NeedLogin), in the account their session
    acts in, checking CSRF on writes."""
    services = services_of(request)
    token = request.cookies.get(session_cookie(request))
    if not token:
        raise NeedLogin()
    found = await services.db.read(user_service.current(services, token))
    if found is None:
        raise NeedLogin()
    user = found.user
    viewer = Viewer(
        user_id=int(user["id"]),
        email=str(user["email"]),
        name=str(user["name"] or ""),
        account_id=found.account.account_id,
        account_name=found.account.name,
        role=found.account.role,
        csrf=csrf_for(services, "session:" + token),
        totp_enabled=user["totp_enabled_at"] is not None,
        accounts=found.accounts,
    )
    if request.method not in SAFE_METHODS:
        await check_csrf(request, viewer.csrf)
    request.state.viewer = viewer
    return viewer


async def check_csrf(request: Request, expected: str) -> None:
    """The token from the header (htmx) or the form field must match; Origin, if sent,
    must be this host."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = urlsplit(origin).netloc
        if host != request.headers.get("host", ""):
            raise BadCsrf()
    elif origin == "null":
        raise BadCsrf()
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else ""
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise BadCsrf()


def require_write(viewer: Viewer) -> None:
    if not viewer.can_write:
        raise NotAllowed()


def new_secret() -> str:
    return secrets.token_urlsafe(24)


# --- rendering -----------------------------------------------------------------------------


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def _size(value: Any) -> str:
    number = float(value or 0)
    for unit in ("B", "KB", "MB"):
        if number < 1024:
            return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    return f"{number:.1f} GB"


def _percent(value: Any) -> str:
    return f"{float(value or 0) * 100:.1f}%"


templates_env = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates_env.filters["when"] = _when
templates_env.filters["size"] = _size
templates_env.filters["percent"] = _percent
templates_env.globals["version"] = __version__


def security_headers(response: Response, csp: str = PAGE_CSP) -> Response:
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = (
        "DENY" if "frame-ancestors 'none'" in csp else "SAMEORIGIN"
    )
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on
    # form posts, which the CSRF check refuses. Other sites still get no referrer.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    return response


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page (or, for htmx, a fragment template) with the dashboard's headers."""
    viewer = getattr(request.state, "viewer", None)
    body = templates_env.get_template(template).render(
        request=request, viewer=viewer, path=request.url.path, **context
    )
    return security_headers(HTMLResponse(body, status_code=status))  # type: ignore[return-value]


def redirect(url: str, request: Request | None = None) -> Response:
    """After a form post: 303 to ``url`` (htmx follows HX-Redirect instead)."""
    if request is not None and request.headers.get("hx-request"):
        response: Response = Response(status_code=204, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    return security_headers(response)


def markup(text: str) -> Markup:
    """Our own, already-escaped markup (charts built in charts.py)."""
    return Markup(text)
