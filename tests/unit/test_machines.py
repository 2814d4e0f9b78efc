"""Machine openers: each rule, and people (proxied or not) left alone."""

from __future__ import annotations

import pytest

from postroom.domain.machines import (
    Hit,
    NetworkSet,
    Rules,
    apple_egress_networks,
    classify,
    networks,
)

CHROME = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15"
RULES = Rules()


@pytest.mark.parametrize(
    ("hit", "machine"),
    [
        (Hit("open", "GET", "198.51.100.7", CHROME), None),
        (Hit("open", "HEAD", "198.51.100.7", CHROME), "prefetch"),
        (Hit("open", "GET", "198.51.100.7", "Mozilla/5.0"), "apple_mpp"),
        (Hit("open", "GET", "17.58.1.1", CHROME), "apple_mpp"),
        (Hit("click", "GET", "17.58.1.1", CHROME, 600), None),  # Private Relay: a person
        (Hit("open", "GET", "198.51.100.7", ""), "bot"),
        (Hit("click", "GET", "198.51.100.7", "Mozilla/5.0 Barracuda Sentinel", 600), "scanner"),
        (Hit("click", "GET", "198.51.100.7", "python-requests/2.31", 600), "bot"),
        (Hit("click", "GET", "40.107.22.1", CHROME, 600), "scanner"),  # Safe Links (EOP)
        (Hit("click", "GET", "::ffff:40.107.22.1", CHROME, 600), "scanner"),
        (Hit("click", "GET", "198.51.100.7", CHROME, 0.5), "prefetch"),
        (Hit("click", "GET", "198.51.100.7", CHROME, 600, burst=3, links=9), "scanner"),
        (Hit("click", "GET", "198.51.100.7", CHROME, 600, burst=2, links=2), "scanner"),
        (Hit("click", "GET", "198.51.100.7", CHROME, 600, burst=1, links=1), None),
        (Hit("click", "GET", "not an ip", CHROME, None), None),
    ],
)
def test_rules(hit: Hit, machine: str | None) -> None:
    assert classify(hit, RULES).machine == machine


def test_google_and_yahoo_image_proxies_are_people_noted_as_proxied() -> None:
    google = (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    )
    verdict = classify(Hit("open", "GET", "66.249.84.1", google), RULES)
    assert verdict.machine is None and verdict.proxy == "google"
    yahoo = classify(Hit("open", "GET", "1.2.3.4", "YahooMailProxy; https://help.yahoo.com"), RULES)
    assert yahoo.machine is None and yahoo.proxy == "yahoo"


def test_apples_published_list_is_read_and_searched() -> None:
    text = "172.224.226.0/27,GB,GB-EN,London,\n2a02:26f7:b3c0:4000::/64,GB,GB-EN,London,\nbad\n"
    nets = NetworkSet(apple_egress_networks(text) + networks(["17.0.0.0/8"]))
    assert len(nets) == 3
    rules = Rules(apple=nets)
    assert classify(Hit("open", "GET", "172.224.226.5", CHROME), rules).machine == "apple_mpp"
    assert classify(Hit("open", "GET", "2a02:26f7:b3c0:4000::9", CHROME), rules).machine == (
        "apple_mpp"
    )
    assert classify(Hit("open", "GET", "172.224.226.64", CHROME), rules).machine is None
