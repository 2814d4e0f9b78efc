"""SMTP AUTH failures lock the failing credentials at their address and slow the address,
but never refuse a correct credential (one bad client behind a NAT must not stop everyone).

Real listeners, real smtplib clients over STARTTLS, both database backends; the lookups a
locked credential does not make are counted with a SQLAlchemy event listener.
"""

from __future__ import annotations

import base64
import smtplib
import time

import pytest
from smtp_submission import Tls, listeners, make_tls, starttls_client

from postroom.services import Services
from postroom.services.accounts import Bootstrap, create_token
from querycount import counting

WRONG = "pr_" + "0" * 40


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


def auth_plain(client: smtplib.SMTP, user: str, password: str) -> tuple[int, bytes]:
    blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return client.docmd("AUTH", f"PLAIN {blob}")


def timed_auth(client: smtplib.SMTP, user: str, password: str) -> tuple[int, float]:
    started = time.monotonic()
    code, _ = auth_plain(client, user, password)
    return code, time.monotonic() - started


def test_a_correct_token_gets_in_after_other_credentials_failed_from_its_address(
    services: Services, boot: Bootstrap, tls: Tls
) -> None:
    with listeners(services, tls, auth_failures=3, auth_failure_delay=0.0) as running:
        with starttls_client(running.starttls, tls) as client:
            for n in range(6):
                assert auth_plain(client, "api", f"pr_{n:08x}" + "1" * 32)[0] == 535
        with starttls_client(running.starttls, tls) as client:
            assert auth_plain(client, "api", boot.token)[0] == 235


def test_the_failing_credentials_are_locked_at_their_address_without_a_lookup(
    services: Services, boot: Bootstrap, tls: Tls
) -> None:
    with listeners(services, tls, auth_failures=3, auth_failure_delay=0.0) as running:
        with starttls_client(running.starttls, tls) as client:
            for _ in range(3):
                assert auth_plain(client, "api", WRONG)[0] == 535
        with starttls_client(running.starttls, tls) as client, counting(services.db.engine) as seen:
            code, reply = auth_plain(client, "api", WRONG)
        assert code == 454 and b"4.7.0" in reply
        assert seen.n == 0
        with starttls_client(running.starttls, tls) as client:
            assert auth_plain(client, "api", boot.token)[0] == 235


def test_every_failure_is_answered_after_the_failure_delay(
    services: Services, boot: Bootstrap, tls: Tls
) -> None:
    with (
        listeners(services, tls, auth_failure_delay=0.4) as running,
        starttls_client(running.starttls, tls) as client,
    ):
        code, elapsed = timed_auth(client, "api", WRONG)
        assert code == 535 and elapsed >= 0.4


def test_a_spraying_address_is_slowed_not_refused(
    services: Services, boot: Bootstrap, tls: Tls
) -> None:
    settings = {
        "auth_failures": 100,
        "auth_failure_delay": 0.25,
        "auth_tarpit_after": 2,
        "auth_tarpit_max_delay": 1.0,
        "max_commands_before_auth": 50,
    }
    with listeners(services, tls, **settings) as running:
        # A client that logged in before the spray keeps its fast path.
        with starttls_client(running.starttls, tls) as client:
            assert auth_plain(client, "api", boot.token)[0] == 235
        with starttls_client(running.starttls, tls) as client:
            for n in range(4):
                assert auth_plain(client, "api", f"pr_{n:08x}" + "2" * 32)[0] == 535
        # Past the ceiling: each new attempt waits before it is checked (0.25 · 2^2 = 1.0,
        # the cap), a wrong one then waits the failure delay too.
        with starttls_client(running.starttls, tls) as client:
            code, elapsed = timed_auth(client, "api", "pr_ffffffff" + "3" * 32)
            assert code == 535 and elapsed >= 1.0 + 0.25
        # A correct credential never seen from this address: slowed, but accepted.
        other = services.db.write_sync(
            lambda conn: create_token(services, conn, boot.account_id, "second", ("send",))
        )
        with starttls_client(running.starttls, tls) as client:
            code, elapsed = timed_auth(client, "api", other)
            assert code == 235 and elapsed >= 1.0
        with starttls_client(running.starttls, tls) as client:
            code, elapsed = timed_auth(client, "api", boot.token)
            assert code == 235 and elapsed < 1.0
