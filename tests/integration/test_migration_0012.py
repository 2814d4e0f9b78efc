"""Migration 0012 (webhooks) goes down and up again on both backends."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from postroom.services import Services
from postroom.storage.migrate import alembic_config, current_revision, upgrade

TABLES = {"webhooks", "webhook_outbox", "webhook_batches", "webhook_attempts"}


def test_downgrade_to_0011_and_up_again(services: Services) -> None:
    engine = services.db.engine
    assert set(inspect(engine).get_table_names()) >= TABLES
    command.downgrade(alembic_config(engine), "0011")
    assert current_revision(engine) == "0011"
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(engine, "0012")
    assert current_revision(engine) == "0012"
    assert set(inspect(engine).get_table_names()) >= TABLES
