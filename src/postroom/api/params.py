"""Path parameters: the one parser for every id in a route's path.

Stored ids are 64-bit signed integers, so a path id is a decimal integer from 1 to
2^63 - 1; anything else (zero, negative, larger, not a number) cannot name a stored
object. Such a path is answered like an id that exists nowhere: 404 in the route's
error family (:func:`postroom.api.errors.on_request_validation` turns every failed path
parameter into that 404), and storage is never asked, so no backend sees an integer it
cannot hold.

Every route declares its ids with :data:`Id` (a test walks the route table to hold
every route to this).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

MAX_ID = 2**63 - 1

Id = Annotated[
    int, Path(ge=1, le=MAX_ID, description="A numeric id (1 to 2^63-1); other values are 404.")
]
# Email log message ids (UUIDs; the contract's pattern is looser, so is ours).
MessageId = Annotated[
    str, Path(pattern=r"^[0-9A-Za-z-]{1,36}$", description="The message's id (a UUID).")
]
