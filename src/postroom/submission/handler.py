"""What the submission listener does with each command: policy, not protocol.

aiosmtpd speaks SMTP; this handler decides. AUTH PLAIN and LOGIN take either user
``api`` with an API token holding the ``send`` scope (the message goes to the listener's
stream) or a sandbox inbox's SMTP credentials (the message is captured into that inbox).
MAIL and RCPT check addresses and the recipient limit; DATA parses the message
(:mod:`postroom.domain.submitted`) and hands it to ``accept_message()`` like the HTTP
API, after checking the session's credentials again (so a revoked token stops a long
session). ``250`` is sent only once the acceptance transaction has committed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from postroom.domain.addresses import is_valid_email
from postroom.domain.rawmail import Unacceptable
from postroom.domain.streams import Stream
from postroom.domain.submitted import Refused, parse_submission
from postroom.errors import (
    Forbidden,
    NotFound,
    PayloadTooLarge,
    StoreUnavailable,
    Unauthorized,
    ValidationFailed,
)
from postroom.sandbox.smtp_login import inbox_login
from postroom.services import Services
from postroom.services.accept import Origin, accept_message
from postroom.services.auth import Authenticator
from postroom.submission.throttle import AuthThrottle

log = logging.getLogger("postroom.submission")

API_USER = "api"
# Messages larger than this are parsed off the event loop.
_PARSE_INLINE_BYTES = 64 * 1024

TEMPORARY_FAILURE = "451 4.3.0 Temporary failure; try again later"
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_UNAVAILABLE = "454 4.7.0 Temporary authentication failure; try again later"
AUTH_LOCKED = "454 4.7.0 These credentials failed too often from your address; try again later"


@dataclass(frozen=True, slots=True)
class Login:
    """Who a session authenticated as: an account, and an inbox for sandbox credentials.

    The credentials are kept for the session so that each message checks them again: a
    token revoked (or an inbox password reset) mid-session stops the next message.
    """

    account_id: int
    inbox_id: int | None
    user: bytes = field(repr=False)
    password: bytes = field(repr=False)
    # A domain-limited token's From domains (None: any of the account's).
    sender_domains: frozenset[str] | None = None


class SubmissionHandler:
    """aiosmtpd handler (hooks and AUTH mechanisms) for one listener's stream."""

    def __init__(
        self,
        services: Services,
        stream: Stream,
        authenticator: Authenticator,
        throttle: AuthThrottle,
    ) -> None:
        self.services = services
        self.stream = stream
        self.authenticator = authenticator
        self.throttle = throttle
        self.max_recipients = services.settings.submission.max_recipients

    # --- AUTH ---------------------------------------------------------------------------

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        blob: object
        if len(args) == 1:
            blob = await server.challenge_auth("")
        else:
            blob = _b64(args[1])
            if blob is None:
                await server.push("501 5.5.2 Can't decode base64")
        if not isinstance(blob, bytes):  # already answered (bad base64, or "*" to abort)
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:  # authzid NUL authcid NUL passwd (RFC 4616)
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._login(server, parts[1], parts[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        user: object
        if len(args) == 1:
            user = await server.challenge_auth(server.AuthLoginUsernameChallenge)
        else:
            user = _b64(args[1])
            if user is None:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        if not isinstance(user, bytes):
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._login(server, user, password)

    async def _login(self, server: SMTP, user: bytes, password: bytes) -> AuthResult:
        """Check credentials under the throttle's policy (submission/throttle.py)."""
        address = _client_ip(server.session)
        credential = self.throttle.credential(address, user, password)
        tarpit = self.throttle.delay(address, credential)
        if tarpit:
            await asyncio.sleep(tarpit)
        locked = self.throttle.locked(credential)
        try:
            login = None if locked else await self._check(user, password)
        except StoreUnavailable:  # not the client's failure: not counted
            return AuthResult(success=False, handled=False, message=AUTH_UNAVAILABLE)
        if login is None:
            self.throttle.failed(address, credential)
            await asyncio.sleep(self.throttle.failure_delay)
            return AuthResult(
                success=False, handled=False, message=AUTH_LOCKED if locked else AUTH_INVALID
            )
        self.throttle.succeeded(credential)
        return AuthResult(success=True, auth_data=login, message=AUTH_OK)

    async def _check(self, user: bytes, password: bytes) -> Login | None:
        try:
            name, secret = user.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if name == API_USER:
            try:
                principal = await self.authenticator.authenticate(secret)
                principal.require("send")
            except (Unauthorized, Forbidden):
                return None
            return Login(principal.account_id, None, user, password, principal.sender_domains)
        inbox = await inbox_login(self.services, name, password)
        if inbox is None:
            return None
        return Login(inbox.account_id, inbox.inbox_id, user, password)

    # --- envelope -------------------------------------------------------------------------

    async def handle_MAIL(  # noqa: N802
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if not is_valid_email(address):
            return "553 5.1.7 The sender address is not valid"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(  # noqa: N802
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return f"452 4.5.3 Too many recipients (at most {self.max_recipients} a message)"
        if not is_valid_email(address):
            return "553 5.1.3 The recipient address is not valid"
        if not address.isascii() and not envelope.smtp_utf8:
            return "553 5.6.7 Non-ASCII address needs MAIL FROM with SMTPUTF8"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    # --- DATA -----------------------------------------------------------------------------

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        login = session.auth_data
        if not isinstance(login, Login):  # aiosmtpd refuses DATA before AUTH; be sure
            return "530 5.7.0 Authentication required"
        # Tokens are cached for a few seconds (services/auth.py), so this is cheap.
        try:
            if await self._check(login.user, login.password) != login:
                return "535 5.7.8 Authentication credentials no longer valid"
        except StoreUnavailable:
            return TEMPORARY_FAILURE
        raw = envelope.original_content
        assert isinstance(raw, bytes)
        limits = self.services.settings.limits
        kwargs: dict[str, Any] = {
            "max_custom_variables_bytes": limits.max_custom_variables_bytes,
            "max_category_chars": limits.max_category_chars,
            "limits": self.services.raw_limits(),
        }
        recipients = list(envelope.rcpt_tos)
        try:
            if len(raw) <= _PARSE_INLINE_BYTES:
                draft = parse_submission(raw, recipients, **kwargs)
            else:
                draft = await asyncio.to_thread(parse_submission, raw, recipients, **kwargs)
            # A sandbox inbox's credentials capture into it: that is the transactional
            # path of the API's sandbox send too.
            stream = Stream.TRANSACTIONAL if login.inbox_id is not None else self.stream
            origin = Origin(
                login.account_id,
                stream,
                _client_ip(session),
                login.inbox_id,
                sender_domains=login.sender_domains,
            )
            ids = await accept_message(self.services, origin, draft)
        except Unacceptable as exc:
            return exc.reply
        except Refused as exc:
            return f"550 5.6.0 {_reply_text(str(exc))}"
        except ValidationFailed as exc:
            return f"550 5.6.0 {_reply_text('; '.join(exc.errors))}"
        except PayloadTooLarge:
            return "552 5.3.4 Message too big"
        except Unauthorized:
            return "550 5.7.1 The From domain is not a verified sending domain of this account"
        except NotFound:
            return "550 5.7.1 The inbox of these credentials no longer exists"
        except Forbidden:
            return "550 5.7.1 This account is disabled"
        except StoreUnavailable:  # logged once per outage by storage
            return TEMPORARY_FAILURE
        except Exception:
            # Not committed, so not acknowledged: the client keeps the message and retries.
            log.exception("submission from %s failed", _client_ip(session))
            return TEMPORARY_FAILURE
        return f"250 2.0.0 Ok: queued as {ids[0]}"

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd's default reply would show the exception's text to the client.
        log.error("submission session error: %r", error)
        return "421 4.3.0 Internal error; closing"


def _client_ip(session: Session | None) -> str:
    peer = session.peer if session is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")


def _b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def _reply_text(text: str) -> str:
    """Reply text must stay on its line and in ASCII."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)[:400]
