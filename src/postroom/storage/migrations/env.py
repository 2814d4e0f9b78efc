"""Alembic environment: migrates the engine handed over by ``postroom.storage.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from postroom.storage.tables import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through `postroom db migrate`")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=engine.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
