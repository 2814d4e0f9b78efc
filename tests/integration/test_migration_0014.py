"""Migration 0014 (inbound threads, forward rules, answers sent) goes down and up again on
both backends, keeping the received messages."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from postroom.services import Services
from postroom.storage.migrate import alembic_config, current_revision, upgrade

TABLES = {"inbound_threads", "inbound_thread_keys", "inbound_sent", "inbound_forward_rules"}


def _columns(services: Services) -> set[str]:
    return {c["name"] for c in inspect(services.db.engine).get_columns("inbound_messages")}


def test_downgrade_to_0013_and_up_again(services: Services) -> None:
    engine = services.db.engine
    assert set(inspect(engine).get_table_names()) >= TABLES
    assert {"thread_id", "forwards"} <= _columns(services)
    command.downgrade(alembic_config(engine), "0013")
    assert current_revision(engine) == "0013"
    assert not TABLES & set(inspect(engine).get_table_names())
    assert not {"thread_id", "forwards"} & _columns(services)
    upgrade(engine, "0014")
    assert current_revision(engine) == "0014"
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM inbound_messages")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM inbound_threads")).scalar() == 0
    assert {"thread_id", "forwards"} <= _columns(services)
