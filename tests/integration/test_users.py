"""Users (services/users.py) on both backends: second factor with one-time codes and
recovery codes, sessions that expire, invitations by link; no secret stored in clear."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from postroom.clock import FrozenClock
from postroom.domain import totp
from postroom.domain.audit import Actor
from postroom.errors import Conflict, Unauthorized
from postroom.services import Services
from postroom.services import users as user_service
from postroom.services.accounts import Bootstrap
from postroom.storage import tables

PASSWORD = "a long enough password"


def _all_rows(services: Services) -> str:
    def run(conn: Any) -> str:
        dump = []
        for table in tables.metadata.sorted_tables:
            dump += [repr(dict(r._mapping)) for r in conn.execute(select(table))]
        return "\n".join(dump)

    return services.db.read_sync(run)


def test_totp_recovery_codes_and_sessions(services: Services, boot: Bootstrap) -> None:
    clock = FrozenClock(services.clock.now())
    services.clock = clock
    user_id = services.db.write_sync(
        user_service.create_user(
            services, boot.account_id, "Ana@Example.com", PASSWORD, "viewer", Actor.cli()
        )
    )
    enrolment = services.db.write_sync(user_service.begin_totp(services, user_id))
    with pytest.raises(Unauthorized):
        services.db.write_sync(user_service.confirm_totp(services, user_id, "000000", Actor.cli()))
    code = totp.code_at(enrolment.secret, clock.now())
    recovery = services.db.write_sync(
        user_service.confirm_totp(services, user_id, code, Actor.cli())
    )
    assert len(recovery) == user_service.RECOVERY_CODES

    def sign_in(password: str, second: str | None) -> user_service.SignedIn:
        work = user_service.sign_in(services, "ana@example.com", password, second, "192.0.2.1")
        return services.db.write_sync(work)

    with pytest.raises(Unauthorized):
        sign_in(PASSWORD, None)  # the second factor is required now
    with pytest.raises(Unauthorized):
        sign_in(PASSWORD, code)  # the code that enabled it is spent
    with pytest.raises(Unauthorized):
        sign_in("wrong password!!", totp.code_at(enrolment.secret, clock.now()))
    clock.advance(30)
    session = sign_in(PASSWORD, totp.code_at(enrolment.secret, clock.now()))
    assert (
        services.db.read_sync(user_service.session_user(services, session.token))["id"] == user_id
    )
    # A recovery code works once.
    assert sign_in(PASSWORD, recovery[0].upper())
    with pytest.raises(Unauthorized):
        sign_in(PASSWORD, recovery[0])
    # Sessions expire, and sign-out ends one.
    clock.advance(user_service.SESSION_LIFETIME.total_seconds() + 1)
    assert services.db.read_sync(user_service.session_user(services, session.token)) is None
    clock.advance(30)
    other = sign_in(PASSWORD, totp.code_at(enrolment.secret, clock.now()))
    services.db.write_sync(user_service.sign_out(services, other.token))
    assert services.db.read_sync(user_service.session_user(services, other.token)) is None

    stored = _all_rows(services)
    for secret in (PASSWORD, enrolment.secret, session.token, other.token, *recovery):
        assert secret not in stored


def test_invitation_by_link(services: Services, boot: Bootstrap) -> None:
    clock = FrozenClock(services.clock.now())
    services.clock = clock
    invited = services.db.write_sync(
        user_service.invite(services, boot.account_id, "bo@example.com", "admin", Actor.cli())
    )
    assert invited.token not in _all_rows(services)
    user_id = services.db.write_sync(
        user_service.accept_invitation(services, invited.token, PASSWORD, "Bo")
    )
    with pytest.raises(Unauthorized):  # a link works once
        services.db.write_sync(user_service.accept_invitation(services, invited.token, PASSWORD))
    late = services.db.write_sync(
        user_service.invite(services, boot.account_id, "cy@example.com", "viewer", Actor.cli())
    )
    clock.advance(user_service.INVITATION_LIFETIME.total_seconds() + 1)
    with pytest.raises(Unauthorized):
        services.db.write_sync(user_service.accept_invitation(services, late.token, PASSWORD))
    signed = services.db.write_sync(
        user_service.sign_in(services, "bo@example.com", PASSWORD, None, "")
    )
    assert signed.user_id == user_id
    with pytest.raises(Conflict):
        user_service.hash_password("short")
    with pytest.raises(Conflict):
        services.db.write_sync(
            user_service.invite(services, boot.account_id, "not an address", "admin", Actor.cli())
        )
