"""Shared fixtures: every storage-touching test runs on SQLite and on PostgreSQL.

- ``db_url``: parametrised over ``sqlite`` (a file in tmp_path) and ``postgres`` (a fresh
  schema in the local server, dropped afterwards). PostgreSQL tests are skipped when the
  server is unreachable, unless ``POSTROOM_TEST_REQUIRE_POSTGRES=1`` (CI sets it), in
  which case its absence is a failure.
- ``services``: a migrated database behind a :class:`Services`.
- ``boot``: the first-run bootstrap (account, inbox, admin token).
- ``client``: a Starlette TestClient on the transactional app, token pre-set.
- ``dns_server``: a real authoritative name server on loopback (tests/dnsserver.py).
- ``spamd``: a real SpamAssassin daemon on loopback, its port (tests/spamd.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from dnsserver import dns_server  # noqa: F401  (the fixture: a real name server on loopback)
from postroom.api.app import create_app
from postroom.config import Settings
from postroom.services import Services
from postroom.services.accounts import Bootstrap, bootstrap
from postroom.storage.db import Database
from postroom.storage.migrate import upgrade
from spamd import spamd  # noqa: F401  (the fixture: a real SpamAssassin daemon on loopback)

PG_URL = os.environ.get("POSTROOM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("POSTROOM_TEST_REQUIRE_POSTGRES") == "1"


def _pg_available() -> bool:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


_PG = _pg_available()


@pytest.fixture(scope="session", autouse=True)
def _state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep ``postroom serve``'s record of its data directory (cli/datadir.py) out of the
    user's home: every in-process and subprocess command of the run writes here."""
    saved = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("xdg-state"))
    yield
    if saved is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = saved


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for an empty database, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'postroom.db'}"
        return
    if not _PG:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required but unreachable at {PG_URL}")
        pytest.skip("PostgreSQL unreachable")
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        _shared_trigram_extension(conn)
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _shared_trigram_extension(conn: Any) -> None:
    """pg_trgm in ``public``, so that no test schema owns it: migration 0016 would
    otherwise create it in the first test's schema, and dropping that schema would drop
    the extension (and its indexes) under a test running beside it."""
    with contextlib.suppress(sqlalchemy.exc.DBAPIError):  # a concurrent run made it
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"))


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # Rate limits off: tests make bursts of calls; test_rate_limits.py turns them on.
    # Blocklist checks off: reading a sandbox message would ask the system's resolver
    # about public blocklists; tests that check turn them on against a loopback server.
    return Settings(
        storage={"data_dir": tmp_path / "data", "database_url": db_url},
        ratelimits={"enabled": False},
        sandbox={"blacklist_checks": False},
    )


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    db = Database.from_url(settings.database_url)
    upgrade(db.engine)
    yield Services(settings=settings, db=db)
    db.close()


@pytest.fixture
def boot(services: Services) -> Bootstrap:
    result = bootstrap(services)
    assert result is not None
    return result


@pytest.fixture
def client(services: Services, boot: Bootstrap) -> Iterator[TestClient]:
    app = create_app(services)
    with TestClient(app, base_url="http://testserver") as test_client:
        test_client.headers["Authorization"] = f"Bearer {boot.token}"
        yield test_client
