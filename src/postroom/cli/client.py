"""A small client of Postroom's HTTP API, shared by ``postroom remote``, ``postroom mcp``
and the pytest plugin (``postroom.testing``).

Everything here goes over HTTP with httpx: nothing touches the database, so it works
against any Postroom the caller can reach. Where the server is and which token to use
come from :func:`load_remote` (``POSTROOM_URL``/``POSTROOM_TOKEN``, else the file that
``postroom remote login`` wrote). ``SSL_CERT_FILE`` names a private CA to trust.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_TIMEOUT = 30.0
MESSAGES_PAGE = 30  # sandbox messages per page (the API's page size)


class RemoteError(Exception):
    """A call to Postroom failed; ``status`` is the HTTP status (0: no answer at all)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NotConfigured(RemoteError):
    """No server URL or token: neither the environment nor a saved login has one."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


@dataclass(frozen=True, slots=True)
class Remote:
    """Where a Postroom is and the token to call it with."""

    url: str
    token: str


def config_path() -> Path:
    """The saved login (``$XDG_CONFIG_HOME/postroom/remote.json``, mode 0600)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "postroom" / "remote.json"


def save_remote(remote: Remote, path: Path | None = None) -> Path:
    """Write the login; the file is created 0600 (it holds the token) in a 0700 folder."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = json.dumps({"url": remote.url, "token": remote.token}, indent=2) + "\n"
    # O_CREAT with 0600: the token is never readable by others, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(data)
    os.chmod(path, 0o600)
    return path


def load_remote(url: str | None = None, token: str | None = None) -> Remote:
    """The remote from explicit values, else the environment, else the saved login."""
    url = url or os.environ.get("POSTROOM_URL")
    token = token or os.environ.get("POSTROOM_TOKEN")
    if not (url and token):
        path = config_path()
        if path.exists():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise NotConfigured(f"cannot read {path}: {exc}") from None
            saved_url = str(saved.get("url") or "").rstrip("/")
            url = url or saved_url
            # The saved token goes only to the server it was saved for: an URL from the
            # environment must not receive another server's token.
            if url.rstrip("/") == saved_url:
                token = token or saved.get("token")
    if not url:
        raise NotConfigured("no Postroom URL: set POSTROOM_URL or run `postroom remote login URL`")
    if not token:
        raise NotConfigured("no API token: set POSTROOM_TOKEN or run `postroom remote login URL`")
    return Remote(url.rstrip("/"), token)


def verify_setting() -> ssl.SSLContext | bool:
    """TLS verification: the system's CAs, or the bundle named by ``SSL_CERT_FILE``."""
    cafile = os.environ.get("SSL_CERT_FILE")
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    return True


def _message(response: httpx.Response) -> str:
    """The error text of a contract-shaped error body (``errors`` or ``error``)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        errors = body.get("errors", body.get("error"))
        if isinstance(errors, list):
            return "; ".join(str(e) for e in errors)
        if isinstance(errors, dict):
            return "; ".join(f"{k}: {v}" for k, v in errors.items())
        if errors is not None:
            return str(errors)
    return json.dumps(body)[:500]


class PostroomClient:
    """Calls to one Postroom with one token (sync; close it, or use it as a context)."""

    def __init__(
        self, remote: Remote, *, timeout: float = DEFAULT_TIMEOUT, cafile: Path | None = None
    ) -> None:
        """``cafile`` trusts that CA (else ``SSL_CERT_FILE``, else the system's)."""
        self.remote = remote
        self._http = httpx.Client(
            base_url=remote.url,
            headers={
                "Authorization": f"Bearer {remote.token}",
                "User-Agent": "postroom-client",
            },
            verify=ssl.create_default_context(cafile=str(cafile)) if cafile else verify_setting(),
            timeout=timeout,
        )
        self._account_id: int | None = None

    def __enter__(self) -> PostroomClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- plumbing -----------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call; a non-2xx answer or no answer at all raises :class:`RemoteError`."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise RemoteError(0, f"{self.remote.url}: timed out ({exc})") from None
        except httpx.HTTPError as exc:
            raise RemoteError(0, f"{self.remote.url}: {exc}") from None
        if response.status_code >= 400:
            raise RemoteError(response.status_code, _message(response))
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    @property
    def account_id(self) -> int:
        """The token's account (every token reaches exactly one)."""
        if self._account_id is None:
            accounts = self.json("GET", "/api/accounts")
            if not accounts:
                raise RemoteError(404, "the token reaches no account")
            self._account_id = int(accounts[0]["id"])
        return self._account_id

    def _account(self, path: str) -> str:
        return f"/api/accounts/{self.account_id}{path}"

    def whoami(self) -> dict[str, Any]:
        """The calling token's account, name and scopes (``GET /api/token``)."""
        result: dict[str, Any] = self.json("GET", "/api/token")
        return result

    def can_send(self) -> bool:
        scopes = set(self.whoami().get("scopes", []))
        return bool(scopes & {"admin", "send"})

    # --- sending ------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/send``: the contract's body; answers ``{success, message_ids}``."""
        result: dict[str, Any] = self.json("POST", "/api/send", json=message)
        return result

    def send_to_sandbox(self, inbox_id: int, message: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/send/{inbox_id}``: captured in that sandbox inbox, never delivered."""
        result: dict[str, Any] = self.json("POST", f"/api/send/{inbox_id}", json=message)
        return result

    # --- sandbox ------------------------------------------------------------------------

    def inboxes(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.json("GET", self._account("/inboxes"))
        return result

    def default_inbox_id(self) -> int:
        """The inbox that sandbox delivery captures into (the account's first inbox)."""
        inboxes = self.inboxes()
        if not inboxes:
            raise RemoteError(404, "the account has no sandbox inbox")
        return int(min(inboxes, key=lambda i: int(i["id"]))["id"])

    def messages(
        self,
        inbox_id: int,
        *,
        search: str | None = None,
        message_id: str | None = None,
        wait: float = 0,
        page: int | None = None,
        last_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """One page of an inbox's messages, newest first (``wait``: up to 30 s for one;
        ``last_id``: the page of those older than that id)."""
        params: dict[str, Any] = {}
        if last_id:
            params["last_id"] = last_id
        if search:
            params["search"] = search
        if message_id:
            params["message_id"] = message_id
        if wait:
            params["wait"] = min(wait, 30)
        if page:
            params["page"] = page
        timeout = max(DEFAULT_TIMEOUT, wait + 10)
        result: list[dict[str, Any]] = self.json(
            "GET", self._account(f"/inboxes/{inbox_id}/messages"), params=params, timeout=timeout
        )
        return result

    def messages_after(
        self,
        inbox_id: int,
        after_id: int,
        *,
        search: str | None = None,
        message_id: str | None = None,
        wait: float = 0,
    ) -> list[dict[str, Any]]:
        """Every message newer than ``after_id``, newest first: pages back (they are
        newest first) until a page reaches ``after_id`` or the inbox ends."""
        page = self.messages(inbox_id, search=search, message_id=message_id, wait=max(0, wait))
        rows = list(page)
        while len(page) >= MESSAGES_PAGE and int(page[-1]["id"]) > after_id:
            page = self.messages(
                inbox_id, search=search, message_id=message_id, last_id=int(page[-1]["id"])
            )
            rows += page
        return [r for r in rows if int(r["id"]) > after_id]

    def wait_for_message(
        self,
        inbox_id: int,
        *,
        to: str | None = None,
        message_id: str | None = None,
        after_id: int = 0,
        timeout: float = 10,
    ) -> dict[str, Any]:
        """The oldest message newer than ``after_id`` (to ``to``, or the capture of the sent
        ``message_id``), waiting up to ``timeout`` seconds; :class:`TimeoutError` if none."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            rows = self.messages_after(
                inbox_id, after_id, search=to, message_id=message_id, wait=min(left, 5)
            )
            fresh = [
                r
                for r in rows
                if int(r["id"]) > after_id
                and (to is None or str(r.get("to_email", "")).lower() == to.lower())
            ]
            if fresh:
                return min(fresh, key=lambda r: int(r["id"]))
            if time.monotonic() >= deadline:
                wanted = f" to {to}" if to else ""
                raise TimeoutError(f"no new message{wanted} in inbox {inbox_id} after {timeout} s")
            # The server waits only while the page is empty; older matches return at once.
            time.sleep(0.1)

    def _message(self, inbox_id: int, message_id: int, part: str = "") -> str:
        return self._account(f"/inboxes/{inbox_id}/messages/{message_id}{part}")

    def message(self, inbox_id: int, message_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.json("GET", self._message(inbox_id, message_id))
        return result

    def message_body(self, inbox_id: int, message_id: int, kind: str) -> str:
        """A body part as text: ``txt``, ``html``, ``htmlsource`` or ``raw``."""
        return self.request("GET", self._message(inbox_id, message_id, f"/body.{kind}")).text

    def message_headers(self, inbox_id: int, message_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.json(
            "GET", self._message(inbox_id, message_id, "/mail_headers")
        )
        return result

    def attachments(self, inbox_id: int, message_id: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.json(
            "GET", self._message(inbox_id, message_id, "/attachments")
        )
        return result

    def attachment_content(self, inbox_id: int, message_id: int, attachment_id: int) -> bytes:
        path = self._message(inbox_id, message_id, f"/attachments/{attachment_id}/download")
        return self.request("GET", path).content

    # --- logs and stats -----------------------------------------------------------------

    def logs(
        self,
        *,
        filters: dict[str, Any] | None = None,
        search_after: str | None = None,
    ) -> dict[str, Any]:
        """``GET /api/email_logs``: ``filters`` maps a field to ``{operator: value}``
        (``{"to": {"ci_equal": "a@b.c"}}``) or, for ``sent_after``/``sent_before``, a time."""
        params: list[tuple[str, str]] = []
        for field, condition in (filters or {}).items():
            if isinstance(condition, dict):
                for operator, value in condition.items():
                    params.append((f"filters[{field}][operator]", operator))
                    values = value if isinstance(value, list) else [value]
                    key = f"filters[{field}][value]" + ("[]" if isinstance(value, list) else "")
                    params += [(key, str(v)) for v in values]
            else:
                params.append((f"filters[{field}]", str(condition)))
        if search_after:
            params.append(("search_after", search_after))
        result: dict[str, Any] = self.json("GET", "/api/email_logs", params=params)
        return result

    def log(self, message_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.json("GET", f"/api/email_logs/{quote(message_id, safe='')}")
        return result

    def stats(
        self,
        start_date: str,
        end_date: str,
        group: str | None = None,
    ) -> Any:
        """``GET /api/stats[/{group}]``; dates as YYYY-MM-DD; group: domains, categories,
        email_service_providers or date."""
        path = f"/api/stats/{group}" if group else "/api/stats"
        return self.json("GET", path, params={"start_date": start_date, "end_date": end_date})

    # --- suppressions -------------------------------------------------------------------

    def suppressions(self, email: str | None = None) -> list[dict[str, Any]]:
        params = {"email": email} if email else {}
        result: list[dict[str, Any]] = self.json("GET", "/api/suppressions", params=params)
        return result

    def add_suppression(self, email: str, **extra: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.json(
            "POST", "/api/suppressions", json={"email": email, **extra}
        )
        return result

    def remove_suppression(self, suppression_id: str) -> Any:
        return self.json("DELETE", f"/api/suppressions/{quote(suppression_id, safe='')}")

    def export_suppressions(self) -> str:
        return self.request("GET", "/api/suppressions/export").text

    def import_suppressions(self, csv_text: str) -> Any:
        return self.json(
            "POST",
            "/api/suppressions/import",
            content=csv_text.encode("utf-8"),
            headers={"Content-Type": "text/csv"},
        )

    # --- templates ----------------------------------------------------------------------

    def templates(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.json("GET", "/api/email_templates")
        return result

    def template(self, template_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.json("GET", f"/api/email_templates/{template_id}")
        return result

    def create_template(self, fields: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.json(
            "POST", "/api/email_templates", json={"email_template": fields}
        )
        return result

    def update_template(self, template_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.json(
            "PATCH", f"/api/email_templates/{template_id}", json={"email_template": fields}
        )
        return result

    def delete_template(self, template_id: int) -> None:
        self.json("DELETE", f"/api/email_templates/{template_id}")

    def preview_template(self, template_id: int, variables: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.json(
            "POST",
            f"/api/email_templates/{template_id}/preview",
            json={"template_variables": variables},
        )
        return result

    # --- domains ------------------------------------------------------------------------

    # --- webhooks -----------------------------------------------------------------------

    def webhooks(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.json("GET", "/api/webhooks")["data"]
        return rows

    def add_webhook(self, webhook: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/webhooks``: the answer carries ``signing_secret``, shown only once."""
        result: dict[str, Any] = self.json("POST", "/api/webhooks", json={"webhook": webhook})
        return result["data"]  # type: ignore[no-any-return]

    def test_webhook(self, webhook_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.json("POST", f"/api/webhooks/{webhook_id}/test")
        return result

    def replay_webhook(self, webhook_id: int, since: str, until: str) -> dict[str, Any]:
        body = {"since": since, "until": until}
        result: dict[str, Any] = self.json("POST", f"/api/webhooks/{webhook_id}/replay", json=body)
        return result

    # --- domains ------------------------------------------------------------------------

    def domains(self) -> list[dict[str, Any]]:
        body = self.json("GET", "/api/domains")
        # The contract answers {"data": [...]}; tolerate a bare list too.
        rows: list[dict[str, Any]] = body.get("data", body) if isinstance(body, dict) else body
        return rows

    def domain(self, domain_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.json("GET", f"/api/domains/{domain_id}")
        return result

    def find_domain(self, name_or_id: str) -> dict[str, Any]:
        """A domain by its id or its name."""
        for row in self.domains():
            if str(row.get("id")) == name_or_id or row.get("domain_name") == name_or_id.lower():
                return row
        raise RemoteError(404, f"no sending domain {name_or_id!r}")

    def add_domain(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.json(
            "POST", "/api/domains", json={"sending_domain": {"domain_name": name}}
        )
        return result

    def verify_domain(self, domain_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.json("POST", f"/api/domains/{domain_id}/verify")
        return result

    def rotate_domain(self, domain_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.json("POST", f"/api/domains/{domain_id}/rotate_dkim")
        return result
