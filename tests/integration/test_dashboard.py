"""The dashboard over HTTP (in process, both backends): sign-in with and without TOTP,
every page answers for an owner, a viewer may look but not change, CSRF is enforced,
email HTML is served under the preview CSP and attachments as downloads.

The real-browser tests (Chromium) are in tests/browser/.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection
from starlette.testclient import TestClient

from logseed import DAY1, other_account, seed_sync
from postroom.api.app import create_app
from postroom.clock import FrozenClock
from postroom.dashboard import install
from postroom.domain import totp
from postroom.domain.audit import Actor
from postroom.sandbox import capture
from postroom.services import Services, domains, rollups, stats, templates
from postroom.services import users as user_service
from postroom.services.accounts import Bootstrap
from postroom.storage.repos import accounts as account_repo
from postroom.storage.repos import audit as audit_repo
from postroom.storage.repos import sandbox as sandbox_repo
from postroom.storage.tables import users

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@pytest.fixture
def web(services: Services, boot: Bootstrap) -> Iterator[TestClient]:
    app = create_app(services)
    install(app)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        yield client


def make_user(services: Services, boot: Bootstrap, email: str, role: str) -> int:
    return services.db.write_sync(
        user_service.create_user(services, boot.account_id, email, PASSWORD, role, Actor.cli())
    )


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html[:500]
    return found.group(1)


def sign_in(web: TestClient, email: str, code: str | None = None) -> None:
    page = web.get("/ui/login")
    answer = web.post(
        "/ui/login", data={"csrf": csrf_of(page.text), "email": email, "password": PASSWORD}
    )
    if code is not None:
        assert answer.status_code == 200 and 'name="code"' in answer.text
        pending = re.search(r'name="pending" value="([^"]+)"', answer.text)
        assert pending
        answer = web.post(
            "/ui/login",
            data={"csrf": csrf_of(answer.text), "pending": pending.group(1), "code": code},
        )
    assert answer.status_code == 303, answer.text[:800]
    assert answer.headers["location"] == "/"


def capture_message(services: Services, boot: Bootstrap, html: str, filename: str) -> int:
    mail = EmailMessage()
    mail["From"] = "App <app@example.com>"
    mail["To"] = "Tester <tester@example.com>"
    mail["Subject"] = "Your receipt"
    mail.set_content("Plain body")
    mail.add_alternative(html, subtype="html")
    mail.add_attachment(
        b"<script>alert(1)</script>", maintype="text", subtype="html", filename=filename
    )
    raw = mail.as_bytes()
    now = datetime.now(UTC)
    message = {
        "account_id": boot.account_id,
        "id": None,
        "subject": "Your receipt",
        "sender": "app@example.com",
        "sender_name": "App",
        "first_to": "tester@example.com",
        "first_to_name": "Tester",
        "client_ip": None,
        "text_size": 10,
        "html_size": len(html),
    }
    row = capture.captured_row(message, raw, inbox_id=boot.inbox_id, now=now)
    return services.db.write_sync(lambda conn: sandbox_repo.insert_capture(conn, row))


def test_pages_need_a_session(web: TestClient) -> None:
    for path in ("/", "/ui/logs", "/ui/sandbox", "/ui/domains", "/ui/tokens"):
        answer = web.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
    assert web.get("/", headers={"HX-Request": "true"}).headers["HX-Redirect"] == "/ui/login"


def test_wrong_password_and_login_csrf(
    web: TestClient, services: Services, boot: Bootstrap
) -> None:
    make_user(services, boot, "owner@example.com", "owner")
    page = web.get("/ui/login")
    assert "Content-Security-Policy" in page.headers
    wrong = web.post(
        "/ui/login",
        data={"csrf": csrf_of(page.text), "email": "owner@example.com", "password": "nope" * 4},
    )
    assert wrong.status_code == 401 and "Wrong email or password" in wrong.text
    forged = web.post(
        "/ui/login",
        data={"csrf": "0" * 64, "email": "owner@example.com", "password": PASSWORD},
    )
    assert forged.status_code == 403


def test_owner_sees_every_page(web: TestClient, services: Services, boot: Bootstrap) -> None:
    make_user(services, boot, "owner@example.com", "owner")
    sign_in(web, "owner@example.com")
    for path in (
        "/",
        "/?days=7&stream=bulk",
        "/ui/logs",
        "/ui/logs?to=someone&status=delivered&event=open",
        "/ui/sandbox",
        f"/ui/sandbox/{boot.inbox_id}",
        f"/ui/sandbox/{boot.inbox_id}/messages",
        "/ui/domains",
        "/ui/templates",
        "/ui/templates/new",
        "/ui/suppressions",
        "/ui/tokens",
        "/ui/account",
    ):
        answer = web.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        csp = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert web.get("/ui/static/htmx.min.js").status_code == 200
    assert web.get("/ui/static/..%2Fweb.py").status_code == 404


def test_csrf_is_required_for_actions(web: TestClient, services: Services, boot: Bootstrap) -> None:
    make_user(services, boot, "owner@example.com", "owner")
    sign_in(web, "owner@example.com")
    refused = web.post("/ui/tokens", data={"name": "x", "csrf": "f" * 64})
    assert refused.status_code == 403
    other_site = web.post(
        "/ui/tokens",
        data={"name": "x", "csrf": csrf_of(web.get("/ui/tokens").text)},
        headers={"Origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    made = web.post("/ui/tokens", data={"name": "ci", "csrf": csrf_of(web.get("/ui/tokens").text)})
    assert made.status_code == 200 and re.search(r"pr_[0-9a-f]{40}", made.text)


def test_viewer_cannot_change_anything(
    web: TestClient, services: Services, boot: Bootstrap
) -> None:
    make_user(services, boot, "viewer@example.com", "viewer")
    sign_in(web, "viewer@example.com")
    page = web.get("/ui/tokens")
    assert page.status_code == 200 and "Create token" not in page.text
    token = csrf_of(page.text)
    for path, data in (
        ("/ui/tokens", {"name": "x"}),
        ("/ui/domains", {"name": "example.com"}),
        ("/ui/suppressions", {"email": "a@example.com", "stream": "both"}),
        (f"/ui/sandbox/{boot.inbox_id}/clean", {}),
        ("/ui/sandbox/projects", {"name": "P"}),
        ("/ui/templates/new", {"name": "t", "subject": "s", "category": "c"}),
    ):
        answer = web.post(path, data={**data, "csrf": token})
        assert answer.status_code == 403, path
    inbox = web.get(f"/ui/sandbox/{boot.inbox_id}")
    assert "Password" not in inbox.text  # credentials are for owners and admins


def test_totp_enrolment_then_sign_in_with_a_code(
    web: TestClient, services: Services, boot: Bootstrap
) -> None:
    make_user(services, boot, "owner@example.com", "owner")
    sign_in(web, "owner@example.com")
    account = web.get("/ui/account")
    begun = web.post("/ui/account/totp", data={"csrf": csrf_of(account.text)})
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', begun.text)
    assert secret
    code = totp.code_at(secret.group(1), services.clock.now())
    done = web.post("/ui/account/totp/confirm", data={"csrf": csrf_of(begun.text), "code": code})
    assert "recovery codes" in done.text
    web.post("/ui/logout", data={"csrf": csrf_of(done.text)})
    web.cookies.clear()
    assert web.get("/").status_code == 303
    # The same code is good once; the next step's is accepted.
    later = datetime.fromtimestamp(services.clock.now().timestamp() + 30, UTC)
    with pytest.raises(AssertionError):
        sign_in(web, "owner@example.com", code)
    web.cookies.clear()
    services.clock = _Fixed(later)  # type: ignore[assignment]
    sign_in(web, "owner@example.com", totp.code_at(secret.group(1), later))
    assert web.get("/").status_code == 200


class _Fixed:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def test_preview_and_attachment_headers(
    web: TestClient, services: Services, boot: Bootstrap
) -> None:
    make_user(services, boot, "owner@example.com", "owner")
    sign_in(web, "owner@example.com")
    message_id = capture_message(
        services,
        boot,
        "<p>Hi<script>alert(1)</script><img src=https://x.example/p.png>",
        'evil"; name=x.html',
    )
    page = web.get(f"/ui/sandbox/{boot.inbox_id}/m/{message_id}")
    assert page.status_code == 200
    assert '<iframe id="preview-frame"' in page.text and 'sandbox=""' in page.text
    base = f"/ui/sandbox/{boot.inbox_id}/m/{message_id}"
    shown = web.get(f"{base}/preview")
    csp = shown.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox;") and "script-src 'none'" in csp
    assert "https:" not in csp.split("img-src")[1].split(";")[0]
    with_images = web.get(f"{base}/preview?images=1").headers["Content-Security-Policy"]
    assert "https:" in with_images.split("img-src")[1].split(";")[0]
    download = web.get(f"{base}/attachments/1")
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert 'filename="evil__ name=x.html";' in download.headers["Content-Disposition"]
    # Another inbox id (not this account's) is a 404, never the message.
    assert web.get(f"/ui/sandbox/{boot.inbox_id + 999}/m/{message_id}").status_code == 404


def test_invitation_users_and_audit(web: TestClient, services: Services, boot: Bootstrap) -> None:
    make_user(services, boot, "owner@example.com", "owner")
    sign_in(web, "owner@example.com")
    page = web.get("/ui/users")
    assert page.status_code == 200 and "owner@example.com" in page.text
    made = web.post(
        "/ui/users/invite",
        data={"csrf": csrf_of(page.text), "email": "new@example.com", "role": "viewer"},
    )
    link = re.search(
        r'id="invite-link" class="wrap">https?://[^/]+(/ui/invitation/[^<]+)<', made.text
    )
    assert link, made.text[-2000:]
    # A change made in the dashboard is on the audit log, with the user who made it.
    web.post(
        "/ui/suppressions",
        data={"csrf": csrf_of(made.text), "email": "gone@example.com", "stream": "bulk"},
    )
    log = web.get("/ui/audit")
    assert "POST /ui/suppressions" in log.text and "gone@example.com" in log.text
    assert "invitation.created" in log.text
    recorded = services.db.read_sync(
        lambda conn: audit_repo.entries(
            conn, account_id=boot.account_id, action="POST /ui/suppressions"
        )
    )
    assert recorded[0]["actor_name"] == "owner@example.com"
    assert "csrf" not in recorded[0]["after"]  # the CSRF token is never recorded
    web.post("/ui/logout", data={"csrf": csrf_of(log.text)})
    web.cookies.clear()
    form = web.get(link.group(1))
    accepted = web.post(
        link.group(1), data={"csrf": csrf_of(form.text), "password": PASSWORD, "name": "New"}
    )
    assert accepted.status_code == 303
    again = web.post(
        link.group(1), data={"csrf": csrf_of(form.text), "password": PASSWORD, "name": "New"}
    )
    assert again.status_code == 410
    sign_in(web, "new@example.com")
    assert "viewer" in web.get("/ui/account").text
    assert web.get("/ui/audit").status_code == 200


def test_overview_and_logs_show_the_seeded_numbers(
    web: TestClient, services: Services, boot: Bootstrap
) -> None:
    """The overview's totals and per-stream figures are the stats API's (same rollups),
    and the logs page finds a message by its recipient."""
    services.settings.insights.stats_settle_seconds = 0
    clock = FrozenClock()
    data = seed_sync(services, boot.account_id, clock)
    asyncio.run(rollups.consume(services))
    make_user(services, boot, "owner@example.com", "owner")
    sign_in(web, "owner@example.com")
    query = stats.StatsQuery(DAY1.date(), clock.now().date())
    expected = services.db.read_sync(lambda c: stats.aggregate_sync(c, boot.account_id, query))
    page = web.get("/?days=30").text
    sent = expected["delivery_count"] + expected["bounce_count"]
    assert sent > 0
    assert f"<b>{sent:,}</b><span>Sent (final answer)</span>" in page
    assert f"<b>{expected['delivery_rate'] * 100:.1f}%</b><span>Delivered</span>" in page
    assert "shop.example" in page  # the per-domain table
    found = web.get("/ui/logs", params={"to": "carol@"}).text
    assert "1 message" in found and data.ids["m3"] in found


def test_another_accounts_objects_are_not_found(
    web: TestClient, services: Services, boot: Bootstrap
) -> None:
    other, _ = other_account(services)
    domain = asyncio.run(domains.create(services, other, "theirs.example"))
    template = asyncio.run(
        templates.create(services, other, {"name": "T", "subject": "S", "category": "c"})
    )
    make_user(services, boot, "owner@example.com", "owner")
    sign_in(web, "owner@example.com")
    token = csrf_of(web.get("/ui/domains").text)
    domain_id, template_id = domain.row["id"], template["id"]
    assert web.get(f"/ui/domains/{domain_id}").status_code == 404
    assert web.post(f"/ui/domains/{domain_id}/delete", data={"csrf": token}).status_code == 404
    assert web.get(f"/ui/templates/{template_id}").status_code == 404
    web.post(f"/ui/templates/{template_id}/delete", data={"csrf": token})
    assert asyncio.run(domains.get(services, other, domain_id)).row["domain_name"]
    assert asyncio.run(templates.get(services, other, template_id))["name"] == "T"
    assert "theirs.example" not in web.get("/ui/domains").text


def test_webhooks_page_creates_tests_replays_pauses_and_deletes(
    web: TestClient, services: Services, boot: Bootstrap
) -> None:
    """The secret is shown once; the service's own checks apply (an internal address is
    refused); a test event to an endpoint that cannot be reached is logged as failed."""
    make_user(services, boot, "owner@example.com", "owner")
    sign_in(web, "owner@example.com")
    empty = web.get("/ui/webhooks")
    assert empty.status_code == 200 and "No webhook yet" in empty.text
    token = csrf_of(empty.text)
    form = {"csrf": token, "url": "https://hooks.invalid/in", "webhook_type": "email_sending",
            "sending_stream": "bulk", "payload_format": "json",
            "event_types": ["delivery", "bounce"]}  # fmt: skip
    made = web.post("/ui/webhooks", data=form)
    assert made.status_code == 200 and "not shown again" in made.text
    secret = re.search(r'id="new-secret" class="wrap">([^<]+)<', made.text)
    assert secret and len(secret.group(1)) >= 32
    listed = web.get("/ui/webhooks")
    assert "hooks.invalid/in" in listed.text and secret.group(1) not in listed.text
    refused = web.post("/ui/webhooks", data={**form, "url": "http://127.0.0.1/x"})
    assert refused.status_code == 422 and 'role="alert"' in refused.text
    [hook] = web.get("/api/webhooks", headers={"Authorization": f"Bearer {boot.token}"}).json()[
        "data"
    ]
    assert hook["sending_stream"] == "bulk" and hook["event_types"] == ["delivery", "bounce"]
    page = f"/ui/webhooks/{hook['id']}"
    tested = web.post(f"{page}/test", data={"csrf": token})
    assert tested.status_code == 200 and "Test event sent: failed" in tested.text
    assert 'id="deliveries"' in tested.text
    replayed = web.post(
        f"{page}/replay",
        data={"csrf": token, "since": "2026-01-01T00:00", "until": "2026-01-02T00:00"},
    )
    assert replayed.status_code == 200 and "Replaying 0 event(s)" in replayed.text
    assert web.post(f"{page}/replay", data={"csrf": token, "since": "x"}).status_code == 422
    assert web.post(f"{page}/active", data={"csrf": token, "active": "false"}).status_code == 303
    assert ">Resume<" in web.get(page).text
    assert web.post(f"{page}/delete", data={"csrf": token}).status_code == 303
    assert "No webhook yet" in web.get("/ui/webhooks").text


def test_a_viewer_reads_webhooks_but_cannot_change_them(
    web: TestClient, services: Services, boot: Bootstrap
) -> None:
    make_user(services, boot, "viewer@example.com", "viewer")
    sign_in(web, "viewer@example.com")
    page = web.get("/ui/webhooks")
    assert page.status_code == 200 and "Add a webhook" not in page.text
    answer = web.post(
        "/ui/webhooks", data={"csrf": csrf_of(page.text), "url": "https://x.example/"}
    )
    assert answer.status_code == 403


def test_an_admin_changes_a_users_role_but_not_the_owners(
    web: TestClient, services: Services, boot: Bootstrap
) -> None:
    make_user(services, boot, "owner@example.com", "owner")
    colleague = make_user(services, boot, "ann@example.com", "viewer")
    sign_in(web, "owner@example.com")
    page = web.get("/ui/users")
    token = csrf_of(page.text)
    assert f'action="/ui/users/{colleague}/role"' in page.text
    made = web.post(f"/ui/users/{colleague}/role", data={"csrf": token, "role": "admin"})
    assert made.status_code == 303
    role = select(users.c.role).where(users.c.id == colleague)
    assert services.db.read_sync(lambda c: c.execute(role).scalar()) == "admin"
    assert (
        web.post(f"/ui/users/{colleague}/role", data={"csrf": token, "role": "owner"}).status_code
        == 422
    )
    owner_id = services.db.read_sync(
        lambda c: c.execute(select(users.c.id).where(users.c.email == "owner@example.com")).scalar()
    )
    refused = web.post(f"/ui/users/{owner_id}/role", data={"csrf": token, "role": "viewer"})
    assert refused.status_code == 403
    assert (
        web.post("/ui/users/999999/role", data={"csrf": token, "role": "viewer"}).status_code == 404
    )
    audited = web.get("/ui/audit").text
    assert "account_access.permissions_updated" in audited


def _grant(services: Services, account_id: int, email: str, role: str) -> None:
    """An access to ``account_id`` for the existing user ``email``, the way users get one:
    an invitation from that account, accepted."""
    invited = services.db.write_sync(
        user_service.invite(services, account_id, email, role, Actor.cli())
    )
    services.db.write_sync(user_service.accept_invitation(services, invited.token, PASSWORD))


def test_switching_account_scopes_pages_actions_and_role(
    web: TestClient, services: Services, boot: Bootstrap
) -> None:
    """A user with accesses in several accounts picks one in the layout's switcher; every
    page and action is then that account's, with the user's role there. An account they
    have no access to cannot be selected, whatever the form says."""
    admin_in, _ = other_account(services)  # the user is an admin there
    viewer_in, _ = other_account(services)  # a viewer there
    stranger, _ = other_account(services)  # no access at all
    for account_id, name in (
        (boot.account_id, "home.example"),
        (admin_in, "admin.example"),
        (viewer_in, "viewer.example"),
        (stranger, "stranger.example"),
    ):
        asyncio.run(domains.create(services, account_id, name))
    make_user(services, boot, "owner@example.com", "owner")
    _grant(services, admin_in, "owner@example.com", "admin")
    _grant(services, viewer_in, "owner@example.com", "viewer")
    sign_in(web, "owner@example.com")

    page = web.get("/ui/domains")
    assert "home.example" in page.text and "admin.example" not in page.text
    options = re.findall(r'<option value="(\d+)"', page.text)
    assert sorted(int(o) for o in options) == sorted([boot.account_id, admin_in, viewer_in])

    def switch(value: object, token: str) -> int:
        answer = web.post("/ui/account/switch", data={"csrf": token, "account_id": str(value)})
        return answer.status_code

    assert switch(admin_in, csrf_of(page.text)) == 303
    page = web.get("/ui/domains")
    assert "admin.example" in page.text and "home.example" not in page.text
    assert "owner@example.com · admin" in page.text
    token = csrf_of(page.text)
    # Actions land in the selected account, and only there.
    added = web.post(
        "/ui/suppressions", data={"csrf": token, "email": "gone@example.com", "stream": "bulk"}
    )
    assert added.status_code == 303
    assert "gone@example.com" in web.get("/ui/suppressions").text
    home_domain = asyncio.run(domains.list_domains(services, boot.account_id))[0]
    assert web.get(f"/ui/domains/{home_domain.row['id']}").status_code == 404

    # Tampered forms: an account without access, one that does not exist, not a number.
    for value in (stranger, 999_999, "x", ""):
        assert switch(value, token) == 403, value
    assert "admin.example" in web.get("/ui/domains").text  # still where it was
    assert web.post("/ui/account/switch", data={"account_id": str(viewer_in)}).status_code == 403

    assert switch(viewer_in, token) == 303
    page = web.get("/ui/suppressions")
    assert "owner@example.com · viewer" in page.text and "gone@example.com" not in page.text
    refused = web.post(
        "/ui/suppressions",
        data={"csrf": csrf_of(page.text), "email": "b@example.com", "stream": "bulk"},
    )
    assert refused.status_code == 403

    assert switch(boot.account_id, token) == 303
    page = web.get("/ui/suppressions")
    assert "owner@example.com · owner" in page.text and "gone@example.com" not in page.text


def test_a_revoked_access_falls_back_to_the_users_own_account(
    web: TestClient, services: Services, boot: Bootstrap
) -> None:
    other, _ = other_account(services)
    asyncio.run(domains.create(services, other, "theirs.example"))
    user_id = make_user(services, boot, "owner@example.com", "owner")
    _grant(services, other, "owner@example.com", "admin")
    sign_in(web, "owner@example.com")
    token = csrf_of(web.get("/").text)
    switched = web.post("/ui/account/switch", data={"csrf": token, "account_id": str(other)})
    assert switched.status_code == 303
    assert "theirs.example" in web.get("/ui/domains").text

    def revoke(conn: Connection) -> None:
        found = account_repo.access_of(conn, other, "User", user_id)
        assert found is not None
        account_repo.delete_access(conn, int(found["id"]))

    services.db.write_sync(revoke)
    page = web.get("/ui/domains")
    assert page.status_code == 200 and "theirs.example" not in page.text
    assert 'name="account_id"' not in page.text  # one account left: no switcher
    again = web.post("/ui/account/switch", data={"csrf": token, "account_id": str(other)})
    assert again.status_code == 403
