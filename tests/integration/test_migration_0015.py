"""Migration 0015 (sandbox forwards, blacklist reports) goes down and up again on both
backends, keeping the captured messages it does not own."""

from __future__ import annotations

from alembic import command
from sqlalchemy import func, inspect, select

from postroom.services import Services
from postroom.storage.migrate import alembic_config, current_revision, upgrade
from postroom.storage.tables import sandbox_messages

TABLES = {"sandbox_forwards"}


def _captured(services: Services) -> int:
    query = select(func.count()).select_from(sandbox_messages)
    return int(services.db.read_sync(lambda conn: conn.execute(query).scalar_one()))


def test_downgrade_to_0014_and_up_again(services: Services) -> None:
    engine = services.db.engine
    assert set(inspect(engine).get_table_names()) >= TABLES
    captured = _captured(services)
    command.downgrade(alembic_config(engine), "0014")
    assert current_revision(engine) == "0014"
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(engine, "0015")
    assert current_revision(engine) == "0015"
    assert set(inspect(engine).get_table_names()) >= TABLES
    assert _captured(services) == captured
