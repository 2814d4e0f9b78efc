"""Count the SQL statements an engine runs, with a real SQLAlchemy event listener.

Used where a test must prove that something did *not* reach the database (a locked
credential, a throttled token): ``with counting(engine) as seen: ...; assert seen.n == 0``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event


@dataclass
class Seen:
    statements: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.statements)


@contextmanager
def counting(engine: Engine) -> Iterator[Seen]:
    seen = Seen()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
