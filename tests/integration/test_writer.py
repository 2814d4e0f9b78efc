"""The group-commit writer: answers only after commit, isolates a failing neighbour."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from postroom.services import Services
from postroom.storage.tables import accounts


def _insert(name: str) -> object:
    def run(conn: Connection) -> str:
        if name == "boom":
            raise RuntimeError("boom")
        conn.execute(accounts.insert().values(name=name, created_at=datetime.now(UTC)))
        return name

    return run


def test_concurrent_writes_share_commits_and_a_failure_stays_alone(services: Services) -> None:
    """Fifty concurrent writes, one of them failing: 49 rows, one exception, in order."""

    async def burst() -> list[object]:
        names = [f"a{i}" for i in range(50)]
        names[25] = "boom"
        jobs = [services.db.write(_insert(n)) for n in names]  # type: ignore[arg-type]
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = asyncio.run(burst())
    assert isinstance(results[25], RuntimeError)
    assert [r for i, r in enumerate(results) if i != 25] == [f"a{i}" for i in range(50) if i != 25]
    count = services.db.read_sync(
        lambda c: c.execute(select(func.count()).select_from(accounts)).scalar()
    )
    assert count == 49


def test_write_sync_rolls_back_on_error(services: Services) -> None:
    with pytest.raises(RuntimeError):
        services.db.write_sync(_insert("boom"))  # type: ignore[arg-type]
    services.db.write_sync(_insert("ok"))  # type: ignore[arg-type]
    names = services.db.read_sync(lambda c: c.execute(select(accounts.c.name)).scalars().all())
    assert names == ["ok"]
