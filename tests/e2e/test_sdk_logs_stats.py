"""The official ``mailtrap`` SDK reads email logs and stats from a real ``postroom serve``.

Its own server (HTTPS, sandbox delivery) with a fast scheduler, so the stats consumer
folds the delivery events within a second. The SDK builds the query strings (encoded
brackets) and validates the answers with its own models.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

import mailtrap as mt
import mailtrap.client
import pytest
from mailtrap.models.email_logs import EmailLogsListFilters
from mailtrap.models.stats import SendingStats, StatsFilterParams
from server import TlsFiles, start_server

pytestmark = pytest.mark.slow
T = TypeVar("T")


@pytest.fixture(scope="module")
def sdk(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[mt.MailtrapClient]:
    data_dir = tmp_path_factory.mktemp("logs") / "data"
    env = {"POSTROOM_SCHEDULER__INTERVAL": "0.3", "POSTROOM_INSIGHTS__STATS_SETTLE_SECONDS": "0"}
    server = start_server(data_dir, tls=(tls_files.cert_chain_pem, tls_files.key_pem), env=env)
    try:
        token = server.first_start_token()
        assert token
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("REQUESTS_CA_BUNDLE", str(tls_files.ca_pem))
            patch.setattr(mailtrap.client, "GENERAL_HOST", f"127.0.0.1:{server.port}")
            yield mt.MailtrapClient(
                token=token, account_id="1", api_host=f"127.0.0.1:{server.port}"
            )
    except BaseException:
        server.kill9()
        raise
    gc.collect()
    assert server.stop() == 0


def _eventually(fn: Callable[[], T | None], timeout: float = 15) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value is not None:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_sdk_lists_filters_and_reads_a_message(sdk: mt.MailtrapClient) -> None:
    sent = sdk.send(
        mt.Mail(
            sender=mt.Address(email="hello@example.com"),
            to=[mt.Address(email="alice@gmail.com"), mt.Address(email="bob@example.org")],
            subject="Logs via the SDK",
            text="hi",
            category="sdk-check",
        )
    )
    ids = sent["message_ids"]
    logs = sdk.email_logs_api.email_logs

    def delivered() -> list[str] | None:
        found = logs.get_list(
            filters=EmailLogsListFilters(
                category={"operator": "equal", "value": ["sdk-check"]},
                status={"operator": "equal", "value": "delivered"},
            )
        )
        names = [m.message_id for m in found.messages]
        return names if len(names) == 2 else None

    assert sorted(_eventually(delivered)) == sorted(ids)
    only_gmail = logs.get_list(
        filters=EmailLogsListFilters(to={"operator": "ci_contain", "value": "GMAIL"})
    )
    assert [m.to for m in only_gmail.messages] == ["alice@gmail.com"]
    one = logs.get_by_id(ids[0])
    assert one.status == "delivered" and one.subject == "Logs via the SDK"
    assert [e.event_type for e in one.events] == ["delivery"]
    assert one.raw_message_url and "/raw?expires=" in one.raw_message_url


def test_sdk_reads_stats_in_every_grouping(sdk: mt.MailtrapClient) -> None:
    sdk.send(
        mt.Mail(
            sender=mt.Address(email="hello@example.com"),
            to=[mt.Address(email="carol@yahoo.com")],
            subject="Stats via the SDK",
            text="hi",
            category="sdk-stats",
        )
    )
    today = datetime.now(UTC).date().isoformat()
    params = StatsFilterParams(start_date=today, end_date=today, categories=["sdk-stats"])

    def counted() -> SendingStats | None:
        stats = sdk.stats_api.get(1, params)
        return stats if stats.delivery_count == 1 else None

    stats = _eventually(counted)
    assert stats.delivery_rate == 1.0 and stats.bounce_count == 0
    [by_esp] = sdk.stats_api.by_email_service_provider(1, params)
    assert by_esp.value == "Yahoo" and by_esp.stats.delivery_count == 1
    [by_category] = sdk.stats_api.by_category(1, params)
    assert by_category.value == "sdk-stats"
    [by_date] = sdk.stats_api.by_date(1, params)
    assert by_date.value == today
    [by_domain] = sdk.stats_api.by_domain(1, params)
    assert by_domain.value == 0  # example.com is not a sending domain of this account
