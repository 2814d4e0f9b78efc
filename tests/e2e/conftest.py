"""Fixtures for the end-to-end tests: a real ``postroom serve`` over HTTPS with a private CA.

- ``tls_files``: a throwaway CA and a server certificate for 127.0.0.1 and localhost,
  written as PEM files (tests/tlsfiles.py).
- ``instance``: ``postroom serve`` started as a subprocess on two free ports with that
  certificate, its first-start token, account and default inbox; the official SDK is
  pointed at it for the whole module (``REQUESTS_CA_BUNDLE`` and
  ``mailtrap.client.GENERAL_HOST``). At teardown the server gets SIGTERM and must exit 0.
- ``sandbox_instance``: the same, its spam reports scored by a real spamd (tests/spamd.py).
- ``pg_url``: a fresh schema in the local PostgreSQL (conventions of tests/conftest.py).
- ``database_url``: each test twice, on SQLite (None: in the data directory) and on a
  fresh PostgreSQL schema.
"""

from __future__ import annotations

import contextlib
import gc
import os
import secrets
import ssl
from collections.abc import Iterator

import httpx
import mailtrap.client
import pytest
from server import Instance, Store, TlsFiles, run_cli, start_server
from sqlalchemy import create_engine, text

from dnsserver import LocalDnsServer
from tlsfiles import make_tls

PG_URL = os.environ.get("POSTROOM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("POSTROOM_TEST_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    tls = make_tls(tmp_path_factory.mktemp("tls"))
    return TlsFiles(tls.ca, tls.cert, tls.key)


@contextlib.contextmanager
def _serving(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles, env: dict[str, str] | None
) -> Iterator[Instance]:
    data_dir = tmp_path_factory.mktemp("instance") / "data"
    server = start_server(data_dir, tls=(tls_files.cert_chain_pem, tls_files.key_pem), env=env)
    store = Store(data_dir)
    try:
        token = (
            server.first_start_token()
            or run_cli("token", "create", "--name", "e2e", data_dir=data_dir).strip()
        )
        verify = ssl.create_default_context(cafile=str(tls_files.ca_pem))
        with httpx.Client(verify=verify, timeout=10) as http:
            response = http.get(
                f"{server.url()}/api/accounts", headers={"Authorization": f"Bearer {token}"}
            )
        assert response.status_code == 200, response.text
        account_id = int(response.json()[0]["id"])
        inbox_id = int(store.scalar("SELECT id FROM inboxes WHERE is_default ORDER BY id LIMIT 1"))
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("REQUESTS_CA_BUNDLE", str(tls_files.ca_pem))
            patch.setattr(mailtrap.client, "GENERAL_HOST", f"127.0.0.1:{server.port}")
            yield Instance(server, token, account_id, inbox_id, tls_files, store)
    except BaseException:
        server.kill9()
        raise
    finally:
        store.close()
    # The SDK opens a requests.Session per call and never closes it; collect them so their
    # idle keep-alive connections are closed before SIGTERM. (Shutdown with a client that
    # keeps its connection open is a test of its own in test_sdk_e2e.py.)
    gc.collect()
    code = server.stop()
    assert code == 0, f"postroom serve exited {code} on SIGTERM\n{server.output()}"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[Instance]:
    with _serving(tmp_path_factory, tls_files, None) as served:
        yield served


@pytest.fixture(scope="module")
def sandbox_instance(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles, spamd: int
) -> Iterator[Instance]:
    """Like ``instance``, with spam reports scored by the session's real spamd, and
    blocklist checks asking a loopback name server (which lists nothing)."""
    with LocalDnsServer() as dns:
        env = {
            "POSTROOM_SANDBOX__SPAMD_PORT": str(spamd),
            "POSTROOM_SANDBOX__BLACKLIST_CHECKS": "true",
            "POSTROOM_DNS__SERVER": dns.address,
        }
        with _serving(tmp_path_factory, tls_files, env) as served:
            yield served


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A database URL for a fresh PostgreSQL schema, dropped afterwards."""
    try:
        admin = create_engine(
            PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required but unreachable at {PG_URL}")
        pytest.skip("PostgreSQL unreachable")
    schema = f"e2e_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None: SQLite in the data directory; else a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url
