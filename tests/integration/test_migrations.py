"""Alembic migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from postroom.services import Services
from postroom.storage.migrate import current_revision, upgrade
from postroom.storage.search import is_search_object
from postroom.storage.tables import metadata


def test_migrated_schema_matches_the_tables(services: Services) -> None:
    """After `db migrate`, autogenerate finds nothing to change."""
    with services.db.engine.connect() as conn:
        # The search indexes (FTS5 tables, trigram indexes) are not declared as tables.
        opts = {"include_name": lambda name, *_: not is_search_object(name)}
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), metadata)
    assert diff == []


def test_migrate_is_idempotent(services: Services) -> None:
    """Running the migrations again on a current database changes nothing."""
    before = current_revision(services.db.engine)
    upgrade(services.db.engine)
    assert current_revision(services.db.engine) == before is not None
