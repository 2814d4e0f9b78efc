"""Migration 0017 (email campaigns) goes down and up again on both backends, touching
nothing it does not own."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from postroom.services import Services
from postroom.storage.migrate import alembic_config, current_revision, upgrade

TABLES = {"email_campaigns", "email_campaign_recipients"}


def test_downgrade_to_0015_and_up_again(services: Services) -> None:
    engine = services.db.engine
    before = set(inspect(engine).get_table_names())
    assert before >= TABLES
    command.downgrade(alembic_config(engine), "0016")
    assert current_revision(engine) == "0016"
    assert set(inspect(engine).get_table_names()) == before - TABLES
    upgrade(engine, "0017")
    assert current_revision(engine) == "0017"
    assert set(inspect(engine).get_table_names()) == before
