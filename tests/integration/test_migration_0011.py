"""Migration 0011 (contacts and inbound mail) goes down and up again on both backends."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from postroom.services import Services
from postroom.storage.migrate import alembic_config, current_revision, upgrade

TABLES = {
    "contact_fields",
    "contact_lists",
    "contacts",
    "contact_list_members",
    "contact_imports",
    "contact_exports",
    "contact_events",
    "inbound_folders",
    "inbound_inboxes",
    "inbound_messages",
}


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def test_downgrade_removes_the_tables_and_upgrade_restores_them(services: Services) -> None:
    engine = services.db.engine
    # What 0011 follows (0010 now; whatever the chain puts before it later).
    before = str(
        ScriptDirectory.from_config(alembic_config(engine)).get_revision("0011").down_revision
    )
    assert set(inspect(engine).get_table_names()) >= TABLES
    downgrade(engine, before)
    assert current_revision(engine) == before
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(engine, "0011")
    assert current_revision(engine) == "0011"
    assert set(inspect(engine).get_table_names()) >= TABLES
