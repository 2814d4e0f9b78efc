"""Sign in (email and password, then the TOTP step when the user has one) and sign out.

Sessions, passwords and codes are F11's (services/users.py); this module is their form.
Between the two steps the email and password wait in this process's memory only, under
a random single-use handle that expires after ``PENDING_SECONDS`` and allows
``PENDING_TRIES`` codes, so the password never goes back to the browser. Failed
attempts count per client address (``ratelimits.failed_auth``) like the API's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from postroom.dashboard import web
from postroom.errors import Unauthorized
from postroom.net.clients import client_key
from postroom.services import users as user_service
from postroom.services.cache import TtlCache
from postroom.services.ratelimit import FailureThrottle
from postroom.storage.repos import users as user_repo

router = APIRouter()

PENDING_SECONDS = 300.0
PENDING_TRIES = 5
LOGIN_COOKIE_SECONDS = 3600


@dataclass
class _Pending:
    email: str
    password: str
    tries: int = field(default=0)


def _state(request: Request) -> tuple[TtlCache[str, _Pending], FailureThrottle]:
    app_state = request.app.state
    if not hasattr(app_state, "dashboard_pending"):
        app_state.dashboard_pending = TtlCache(PENDING_SECONDS, max_entries=10_000)
        spec = web.services_of(request).settings.ratelimits.failed_auth
        app_state.dashboard_failures = FailureThrottle(spec)
    return app_state.dashboard_pending, app_state.dashboard_failures


def _login_csrf(request: Request) -> tuple[str, str | None]:
    """The pre-session seed (a new one when absent) and whether it must be set."""
    seed = request.cookies.get(web.login_cookie(request))
    if seed:
        return seed, None
    fresh = web.new_secret()
    return fresh, fresh


def _form(request: Request, status: int = 200, **context: object) -> Response:
    seed, new = _login_csrf(request)
    response = web.render(
        request,
        "login.html",
        status=status,
        csrf=web.csrf_for(web.services_of(request), "login:" + seed),
        **context,
    )
    if new is not None:
        web.set_cookie(response, request, web.login_cookie(request), new, LOGIN_COOKIE_SECONDS)
    return response


@router.get("/ui/login")
async def login_page(request: Request) -> Response:
    return _form(request)


def _client(request: Request) -> str:
    return client_key(request.client.host if request.client else "") or ""


@router.post("/ui/login")
async def login(request: Request) -> Response:
    services = web.services_of(request)
    seed = request.cookies.get(web.login_cookie(request), "")
    if not seed:
        return _form(request, 403, error="Your sign-in form expired; try again.")
    await web.check_csrf(request, web.csrf_for(services, "login:" + seed))
    pending, failures = _state(request)
    client = _client(request)
    if failures.blocked(client) is not None:
        return _form(request, 429, error="Too many failed attempts; wait a minute and retry.")
    form = await request.form()
    handle = str(form.get("pending") or "")
    code = str(form.get("code") or "").strip().replace(" ", "")
    if handle:
        waiting = pending.get(handle)
        if waiting is None:
            return _form(request, 401, error="That sign-in took too long; start again.")
        waiting.tries += 1
        if waiting.tries > PENDING_TRIES:
            pending.discard(handle)
            return _form(request, 401, error="Too many wrong codes; start again.")
        try:
            signed = await services.db.write(
                user_service.sign_in(services, waiting.email, waiting.password, code, client)
            )
        except Unauthorized:
            failures.failed(client)
            return _form(request, 401, step="code", pending=handle, error="That code is not right.")
        pending.discard(handle)
        return _signed_in(request, signed.token)
    email = str(form.get("email") or "").strip().lower()
    password = str(form.get("password") or "")

    def check(conn: Connection) -> tuple[bool, bool]:
        user = user_repo.by_email(conn, email)
        stored = user["password_hash"] if user is not None else None
        # Always one hash check (a dummy one for an unknown address): timing tells nothing.
        if not user_service.password_matches(stored, password) or user is None:
            return False, False
        return not user["disabled_at"], user["totp_enabled_at"] is not None

    matches, needs_code = await services.db.read(check)
    if not matches:
        failures.failed(client)
        return _form(request, 401, error="Wrong email or password.", email=email)
    if needs_code:
        handle = web.new_secret()
        pending.put(handle, _Pending(email, password))
        return _form(request, step="code", pending=handle)
    try:
        signed = await services.db.write(
            user_service.sign_in(services, email, password, None, client)
        )
    except Unauthorized:
        failures.failed(client)
        return _form(request, 401, error="Wrong email or password.", email=email)
    return _signed_in(request, signed.token)


def _signed_in(request: Request, token: str) -> Response:
    response = web.redirect("/")
    lifetime = int(user_service.SESSION_LIFETIME.total_seconds())
    web.set_cookie(response, request, web.session_cookie(request), token, lifetime)
    web.clear_cookie(response, request, web.login_cookie(request))
    return response


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    await web.viewer_of(request)
    services = web.services_of(request)
    token = request.cookies.get(web.session_cookie(request), "")
    await services.db.write(user_service.sign_out(services, token))
    response = web.redirect("/ui/login")
    web.clear_cookie(response, request, web.session_cookie(request))
    return response
