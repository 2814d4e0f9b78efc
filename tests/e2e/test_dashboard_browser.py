"""The dashboard in a real browser: Debian's Chromium driven by Playwright (its own
browser builds are never downloaded; ``executable_path`` is the system's), against a
real ``postroom serve`` over HTTPS.

* a user signs in, turns on TOTP, signs out, and signs in again with a code;
* finds a sent message by its recipient in the email logs and opens its preview;
* watches a sandbox message appear in the inbox list without reloading;
* adds a sending domain and copies a record from it (read back from the clipboard);
* creates an API token (it works on the API) and revokes it (it stops working);
* an XSS corpus (tests/data/xss_payloads.txt, one payload a line) placed in subjects,
  HTML and text bodies, headers, attachment names, template names and bounce texts
  runs no script: no dialog opens, no page error happens and no console message comes
  from a payload; each page is visited with every payload on it.

Screenshots of every page go to ``POSTROOM_SCREENSHOTS`` when set (docs/screenshots/
holds the committed ones: ``POSTROOM_SCREENSHOTS=docs/screenshots``), else to tmp_path.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from server import Instance, cli_env, storage_args
from sqlalchemy import create_engine, text

from postroom.domain import totp

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "a long enough password"
EMAIL = "owner@example.com"
CORPUS = Path(__file__).parent.parent / "data" / "xss_payloads.txt"

playwright_api = pytest.importorskip("playwright.sync_api")


def _have_chromium() -> bool:
    return Path(CHROMIUM).exists()


if not _have_chromium():
    if os.environ.get("CI"):
        raise RuntimeError("chromium is required in CI (.ci/run installs Debian's package)")
    pytest.skip("no chromium on this machine", allow_module_level=True)


def payloads() -> list[str]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def browser(instance: Instance) -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


class Watch:
    """Everything that would show a script ran: dialogs, page errors, console output
    naming a payload's marker. CSP refusals are logged too; they show a blocked load,
    not a run, and are kept apart."""

    def __init__(self, page: Any) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.console: list[str] = []
        self.refused: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", self._console)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: Any) -> None:
        text_ = message.text
        if "Content Security Policy" in text_ or "Refused to" in text_:
            self.refused.append(text_)
        else:
            self.console.append(f"{message.type}: {text_}")

    def clean(self) -> bool:
        return (
            not self.dialogs and not self.errors and not any("XSS" in line for line in self.console)
        )


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("POSTROOM_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def create_user(instance: Instance, email: str, role: str) -> str:
    command = [
        sys.executable,
        "-m",
        "postroom",
        "user",
        "create",
        email,
        "--role",
        role,
        *storage_args(instance.server.data_dir, instance.server.database_url),
    ]
    env = cli_env({"POSTROOM_PASSWORD": PASSWORD})
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
    return email


@pytest.fixture(scope="module")
def user(instance: Instance) -> str:
    return create_user(instance, EMAIL, "owner")


def sign_in(page: Any, base: str, code: str | None = None, email: str = EMAIL) -> None:
    page.goto(f"{base}/ui/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if code is not None:
        page.get_by_label("Authenticator code").fill(code)
        page.get_by_role("button", name="Verify").click()
    try:
        page.wait_for_url(f"{base}/", timeout=15_000)
    except Exception:
        raise AssertionError(page.content()[:3000]) from None


def send(instance: Instance, payload: dict[str, Any], inbox: int | None = None) -> str:
    path = f"/api/send/{inbox}" if inbox is not None else "/api/send"
    with instance.http() as http:
        answer = http.post(path, json=payload)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["message_ids"][0])


def test_dashboard_in_chromium(instance: Instance, browser: Any, user: str, shots: Path) -> None:
    base = instance.server.url()
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    watch = Watch(page)

    page.goto(f"{base}/ui/login")
    page.screenshot(path=str(shots / "login.png"))
    sign_in(page, base)
    # The session cookie is HttpOnly, SameSite=Strict, Secure with the __Host- prefix.
    [cookie] = [c for c in context.cookies() if c["name"].startswith("__Host-postroom_s")]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"

    # Turn on TOTP, sign out, sign in with a code.
    page.goto(f"{base}/ui/account")
    page.get_by_role("button", name="Set up two-factor authentication").click()
    secret = page.locator("#totp-secret").inner_text()
    page.get_by_label("Code").fill(totp.code_at(secret, datetime.now(UTC)))
    page.get_by_role("button", name="Enable").click()
    page.locator("#recovery-codes").wait_for()
    page.screenshot(path=str(shots / "account.png"))
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{base}/ui/login")
    next_step = (int(time.time()) // 30 + 1) * 30
    time.sleep(max(0.0, next_step - time.time()) + 0.5)  # a code is good once: a fresh step
    sign_in(page, base, totp.code_at(secret, datetime.now(UTC)))
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    # A sent message, found by its recipient; its preview opens.
    recipient = f"find-me-{uuid.uuid4().hex[:8]}@example.net"
    send(
        instance,
        {
            "from": {"email": "app@example.com"},
            "to": [{"email": recipient}],
            "subject": "Receipt 42",
            "html": "<h1 id='hello'>Hello from the preview</h1>",
            "text": "Hello",
        },
    )
    page.goto(f"{base}/ui/logs")
    page.get_by_label("Recipient contains").fill(recipient)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Receipt 42").click()
    frame = page.frame_locator("#preview-frame")
    assert frame.locator("#hello").inner_text() == "Hello from the preview"
    assert page.locator("#preview-frame").get_attribute("sandbox") == ""
    page.screenshot(path=str(shots / "log-message.png"), full_page=True)
    page.goto(f"{base}/ui/logs")
    page.screenshot(path=str(shots / "email-logs.png"), full_page=True)

    # A sandbox message appears without a reload.
    page.goto(f"{base}/ui/sandbox/{instance.inbox_id}")
    marker = page.evaluate("() => (window.__stay = Math.random())")
    send(
        instance,
        {
            "from": {"email": "app@example.com"},
            "to": [{"email": "qa@example.com"}],
            "subject": "Arrives live",
            "text": "Captured",
            "html": "<p>Captured</p>",
        },
        inbox=instance.inbox_id,
    )
    page.get_by_text("Arrives live").wait_for(timeout=20_000)
    assert page.evaluate("() => window.__stay") == marker  # the same document: no reload
    page.screenshot(path=str(shots / "sandbox-inbox.png"), full_page=True)
    page.get_by_text("Arrives live").click()
    page.get_by_role("tab", name="Headers").click()
    page.screenshot(path=str(shots / "sandbox-message.png"), full_page=True)
    page.goto(f"{base}/ui/sandbox")
    page.screenshot(path=str(shots / "sandbox.png"), full_page=True)

    # A domain: add it, copy a record.
    page.goto(f"{base}/ui/domains")
    page.get_by_label("Domain name").fill("mail.example.org")
    page.get_by_role("button", name="Add domain").click()
    page.locator("#records").wait_for()
    expected = page.locator("#rec-1-value").inner_text()
    page.locator('[data-copy="rec-1-value"]').click()
    page.get_by_text("Copied").wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == expected
    page.screenshot(path=str(shots / "domain.png"), full_page=True)
    page.goto(f"{base}/ui/domains")
    page.screenshot(path=str(shots / "domains.png"), full_page=True)

    # A token: create (it works), revoke (it stops).
    page.goto(f"{base}/ui/tokens")
    page.get_by_label("Name", exact=True).fill("browser-made")
    page.get_by_role("button", name="Create token").click()
    value = page.locator("#new-token").inner_text()
    assert re.fullmatch(r"pr_[0-9a-f]{40}", value)
    with instance.http() as http:
        http.headers["Authorization"] = f"Bearer {value}"
        assert http.get("/api/accounts").status_code == 200
    page.screenshot(path=str(shots / "tokens.png"), full_page=True)
    row = page.locator("#tokens tr", has_text="browser-made")
    row.get_by_text("Revoke…").click()
    row.get_by_role("button", name="Revoke “browser-made”").click()
    page.wait_for_url(f"{base}/ui/tokens")
    assert page.locator("#tokens tr", has_text="browser-made").count() == 0
    with instance.http() as http:
        http.headers["Authorization"] = f"Bearer {value}"
        assert http.get("/api/accounts").status_code == 401

    # The remaining pages, for the README.
    page.goto(f"{base}/ui/templates/new")
    page.get_by_label("Name", exact=True).fill("Welcome")
    page.get_by_label("Subject", exact=True).fill("Welcome, {{name}}")
    page.get_by_label("Category", exact=True).fill("onboarding")
    page.get_by_label("HTML body").fill("<h1>Hi {{name}}</h1><p>Welcome to {{company}}.</p>")
    page.frame_locator("#template-preview iframe").get_by_text("Hi Ada").wait_for()
    page.screenshot(path=str(shots / "template-editor.png"), full_page=True)
    page.get_by_role("button", name="Save").click()
    page.goto(f"{base}/ui/templates")
    page.screenshot(path=str(shots / "templates.png"), full_page=True)
    page.goto(f"{base}/ui/suppressions")
    page.get_by_label("Email", exact=True).fill("gone@example.com")
    page.get_by_role("button", name="Suppress").click()
    page.screenshot(path=str(shots / "suppressions.png"), full_page=True)

    page.goto(f"{base}/ui/webhooks")
    page.get_by_label("URL").fill("https://hooks.example.com/in")
    page.get_by_role("button", name="Add webhook").click()
    assert page.get_by_text("not shown again").count() == 1
    page.screenshot(path=str(shots / "webhooks.png"), full_page=True)

    page.goto(f"{base}/ui/users")
    page.screenshot(path=str(shots / "users.png"), full_page=True)
    page.goto(f"{base}/ui/audit")
    assert page.get_by_text("POST /ui/suppressions").count() >= 1
    page.screenshot(path=str(shots / "audit.png"), full_page=True)

    # Keyboard: the skip link is the first stop, then the sections.
    page.goto(f"{base}/")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"

    # A phone-sized window: the same overview, one column.
    phone = browser.new_context(
        ignore_https_errors=True, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    phone.add_cookies(context.cookies())
    mobile = phone.new_page()
    mobile.goto(f"{base}/")
    assert mobile.evaluate("() => document.documentElement.scrollWidth") <= 400
    mobile.screenshot(path=str(shots / "overview-phone.png"), full_page=True)
    phone.close()

    assert watch.clean(), (watch.dialogs, watch.errors, watch.console)
    context.close()


def _bounce_texts(instance: Instance, message_ids: list[str], texts: list[str]) -> None:
    """Bounce events whose provider response is a payload (as a remote MTA could say)."""
    engine = create_engine(f"sqlite:///{instance.server.data_dir / 'postroom.db'}")
    with engine.begin() as conn:
        for message_id, said in zip(message_ids, texts, strict=False):
            conn.execute(
                text(
                    "INSERT INTO events (event_id, account_id, kind, message_id, stream,"
                    " recipient, details, created_at) VALUES (:e, :a, 'bounce', :m,"
                    " 'transactional', 'x@example.com', :d, :t)"
                ),
                {
                    "e": str(uuid.uuid4()),
                    "a": instance.account_id,
                    "m": message_id,
                    "d": f'{{"email_service_provider_response": {_json(said)}}}',
                    "t": datetime.now(UTC).replace(tzinfo=None),
                },
            )
    engine.dispose()


def _json(value: str) -> str:
    import json

    return json.dumps(value)


def test_xss_corpus_runs_no_script(instance: Instance, browser: Any) -> None:
    corpus = payloads()
    assert len(corpus) >= 50
    sent: list[str] = []
    with instance.http() as http:
        for n, payload in enumerate(corpus):
            header_safe = payload.replace("\r", " ").replace("\n", " ")
            attachment = base64.b64encode(payload.encode()).decode()
            body = {
                "from": {"email": "app@example.com", "name": header_safe[:60]},
                "to": [{"email": f"xss{n}@example.com", "name": header_safe[:60]}],
                "subject": header_safe,
                "html": f"<div>{payload}</div>",
                "text": payload,
                "headers": {"X-Payload": header_safe},
                "category": "xss",
                "attachments": [
                    {
                        "filename": header_safe[:200] or "x",
                        "content": attachment,
                        "type": "text/html",
                    }
                ],
            }
            for path in ("/api/send", f"/api/send/{instance.inbox_id}"):
                answer = http.post(path, json=body)
                assert answer.status_code == 200, (payload, answer.text)
                if path == "/api/send":
                    sent.append(str(answer.json()["message_ids"][0]))
            template = {
                "email_template": {
                    "name": payload[:255],
                    "subject": "Subject",
                    "category": "xss",
                    "body_html": "<p>ok</p>",
                }
            }
            answer = http.post(
                f"/api/accounts/{instance.account_id}/email_templates", json=template
            )
            assert answer.status_code in (200, 201, 422), answer.text
    _bounce_texts(instance, sent, corpus)

    base = instance.server.url()
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    watch = Watch(page)
    # A viewer: every page as it is read (and the owner's TOTP stays the other test's).
    sign_in(page, base, email=create_user(instance, "viewer@example.com", "viewer"))
    # The watch itself sees a script that runs (a canary, then forgotten).
    page.evaluate("() => { alert('canary'); console.error('XSS canary'); }")
    assert watch.dialogs == ["canary"] and not watch.clean()
    watch.dialogs.clear()
    watch.console.clear()
    visited = 0
    for url in (
        "/",
        "/ui/logs?category=xss",
        f"/ui/sandbox/{instance.inbox_id}",
        "/ui/sandbox",
        "/ui/templates",
        "/ui/suppressions",
        "/ui/tokens",
        "/ui/users",
        "/ui/audit",
    ):
        page.goto(f"{base}{url}")
        page.wait_for_load_state("networkidle")
        visited += 1
    for message_id in sent:
        page.goto(f"{base}/ui/logs/{message_id}")
        for tab in ("Text", "Headers", "Raw", "Attachments"):
            page.get_by_role("tab", name=re.compile(tab)).click()
        visited += 1
    ids = instance.store.rows(
        "SELECT id FROM sandbox_messages WHERE inbox_id = :i ORDER BY id", i=instance.inbox_id
    )
    for (captured,) in ids:
        page.goto(f"{base}/ui/sandbox/{instance.inbox_id}/m/{captured}?images=1")
        page.get_by_role("tab", name=re.compile("Attachments")).click()
        visited += 1
    templates = instance.store.rows(
        "SELECT id FROM email_templates WHERE category = 'xss' ORDER BY id"
    )
    for (template_id,) in templates:
        page.goto(f"{base}/ui/templates/{template_id}")
        page.wait_for_load_state("networkidle")
        visited += 1
    assert visited > len(corpus)
    assert watch.clean(), (watch.dialogs, watch.errors, watch.console)
    context.close()
