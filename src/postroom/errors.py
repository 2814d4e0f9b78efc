"""Postroom's exception tree. Each class exists because its caller reacts differently.

PostroomError
├── ValidationFailed      bad input; carries the contract's error strings → 400
├── PayloadTooLarge       message or batch over its size limit → 413
├── Unauthorized          missing, unknown or expired token → 401
├── Forbidden             authenticated, but not allowed → 403
├── NotFound              no such object *in the caller's account* → 404
├── Conflict              the request collides with existing state → 409/422
├── StoreUnavailable      the database cannot be reached right now → 503 / SMTP 451
└── FeatureUnavailable    a part this feature needs is not installed or not running → 503
"""

from __future__ import annotations


class PostroomError(Exception):
    """Base of every error Postroom raises on purpose."""


class ValidationFailed(PostroomError):
    """The request is malformed; ``errors`` are the messages shown to the client."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class PayloadTooLarge(PostroomError):
    """A message or request body exceeds its size limit."""


class Unauthorized(PostroomError):
    """No valid credentials were presented."""


class Forbidden(PostroomError):
    """Valid credentials, but the action is not allowed for them."""


class NotFound(PostroomError):
    """The object does not exist in the caller's account (never reveals other tenants)."""


class Conflict(PostroomError):
    """The request conflicts with existing state; ``field_errors`` map fields to messages."""

    def __init__(self, field_errors: dict[str, list[str]]) -> None:
        super().__init__(str(field_errors))
        self.field_errors = field_errors


class StoreUnavailable(PostroomError):
    """The database cannot be reached (restarting, network down): nothing was done, and the
    same request may succeed once it is back."""


class FeatureUnavailable(PostroomError):
    """A feature needs a part that is not installed or not answering (e.g. SpamAssassin's
    spamc/spamd for spam reports); the message says which and how to provide it."""
