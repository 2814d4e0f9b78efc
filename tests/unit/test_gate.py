"""net/gate.py and net/budget.py: connection caps per listener and per client, warnings
rate-limited, and every listener's caps fitted under the open-file limit."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from postroom.config import Settings
from postroom.net import budget
from postroom.net.clients import client_key
from postroom.net.gate import Caps, ConnectionGate, Over, Slot


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_caps_in_all_and_per_client_and_release() -> None:
    gate = ConnectionGate("test", Caps(3, 2), setting="connections.test")
    a1, a2 = gate.admit("192.0.2.1"), gate.admit("192.0.2.1")
    assert isinstance(a1, Slot) and isinstance(a2, Slot)
    assert gate.admit("192.0.2.1") is Over.CLIENT
    b1 = gate.admit("192.0.2.2")
    assert isinstance(b1, Slot)
    assert gate.admit("192.0.2.3") is Over.TOTAL
    a1.release()
    a1.release()  # once only
    assert gate.open == 2 and gate.open_from("192.0.2.1") == 1
    assert isinstance(gate.admit("192.0.2.3"), Slot)
    assert gate.refused == {Over.TOTAL: 1, Over.CLIENT: 1}


def test_ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() -> None:
    assert (
        client_key("2001:db8:0:1::5") == client_key("2001:db8:0:1:ffff::9") == "2001:db8:0:1::/64"
    )
    assert client_key("2001:db8:0:2::5") != client_key("2001:db8:0:1::5")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    gate = ConnectionGate("test", Caps(10, 1), setting="connections.test")
    assert isinstance(gate.admit("2001:db8:0:1::1"), Slot)
    assert gate.admit("2001:db8:0:1::2") is Over.CLIENT


def test_refusals_warn_once_per_interval_and_count_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    gate = ConnectionGate(
        "inbound SMTP (x)", Caps(1, 1), setting="connections.inbound", warn_interval=60, clock=clock
    )
    gate.admit("192.0.2.1")
    with caplog.at_level(logging.WARNING, logger="postroom.net"):
        for _ in range(5):
            gate.admit("192.0.2.2")
        clock.now += 61
        gate.admit("192.0.2.2")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "connections.inbound.max_connections = 1" in messages[0]
    assert "4 more refused since the last warning" in messages[1]


def test_default_caps_fit_a_large_limit_unchanged() -> None:
    settings = Settings()
    plans = budget.plan(settings, 1_048_576)
    assert plans == budget.listeners(settings)
    names = [p.name for p in plans]
    assert names[0].startswith("transactional API") and names[-1].startswith("tracking")
    assert names[-2].startswith("inbound SMTP")


def test_caps_are_scaled_to_fit_a_low_limit_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings()
    with caplog.at_level(logging.WARNING, logger="postroom.net"):
        plans = budget.plan(settings, 1024)
    total = sum(p.caps.max_connections for p in plans)
    assert total + budget.reserved(settings) <= 1024
    assert all(p.caps.max_per_client <= p.caps.max_connections for p in plans)
    [warning] = caplog.records
    assert "open-file limit (1024) is low" in warning.getMessage()
    assert "ulimit -n" in warning.getMessage()


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    code = (
        "import resource; from postroom.net.budget import raise_open_files;"
        "print(raise_open_files(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    done = subprocess.run(
        ["prlimit", "--nofile=256:2048", "--", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["2048", "2048"]


def test_one_cap_can_be_set_alone_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTROOM_CONNECTIONS__INBOUND__MAX_PER_CLIENT", "5")
    caps = Settings().connections.inbound
    assert (caps.max_connections, caps.max_per_client) == (200, 5)
