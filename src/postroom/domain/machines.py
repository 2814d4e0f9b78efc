"""Who loaded a tracking URL: a person, or a machine acting before (or instead of) one.

Pure: the caller gathers the facts of one hit (:class:`Hit`) and gets back a
:class:`Verdict`: ``machine`` is None for a person, else a short name for the kind of
machine; ``proxy`` notes a person whose mail client fetched through a proxy. The rules,
in order (``docs/tracking.md`` explains each and its source):

1. ``HEAD`` requests: link checkers and prefetchers; a browser following a link or a
   mail client loading an image sends ``GET`` → ``prefetch``.
2. Apple Mail Privacy Protection (opens only): its proxies fetch every image of a
   message when it arrives, whether or not anyone reads it. They send the bare
   user agent ``Mozilla/5.0`` and leave from Apple's iCloud Private Relay egress
   ranges (Apple's 17.0.0.0/8, plus the published list when configured) → ``apple_mpp``.
3. Known scanners and bots by user agent (security gateways, link-preview bots,
   HTTP libraries, headless browsers, empty user agents) → ``scanner`` or ``bot``;
   and Microsoft's Exchange Online Protection egress networks, from which Safe Links
   detonates URLs with a browser's user agent → ``scanner``.
4. Clicks within ``click_after_delivery_seconds`` of the delivery: no person reads
   and clicks that fast; gateways that rewrite links follow them on arrival → ``prefetch``.
5. Clicks on several links of one message at once (``burst_links`` distinct links, or
   every link of a message with fewer, within ``burst_seconds``) → ``scanner``.

Google's image proxy (``GoogleImageProxy``) fetches an image when a Gmail user opens the
message: a person, proxied → no machine, ``proxy="google"``. Yahoo's (``YahooMailProxy``)
likewise.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

APPLE_MPP_AGENT = "Mozilla/5.0"
# Apple's own allocation; MPP and iCloud Private Relay egress also uses partner CDNs'
# addresses, which Apple publishes (tracking.apple_ranges_file loads that list).
APPLE_NETWORKS = ("17.0.0.0/8",)
# Exchange Online Protection's outbound networks (Microsoft's "Office 365 URLs and IP
# address ranges", Exchange Online, ID 2): Safe Links time-of-click and detonation checks.
MICROSOFT_EOP_NETWORKS = ("40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17")

# Lower-case user-agent fragments: (fragment, machine). First match wins.
AGENT_RULES: tuple[tuple[str, str], ...] = (
    ("barracuda", "scanner"),
    ("mimecast", "scanner"),
    ("proofpoint", "scanner"),
    ("urldefense", "scanner"),
    ("safelinks", "scanner"),
    ("forcepoint", "scanner"),
    ("symantec", "scanner"),
    ("trendmicro", "scanner"),
    ("trend micro", "scanner"),
    ("sophos", "scanner"),
    ("fireeye", "scanner"),
    ("cisco", "scanner"),
    ("ironport", "scanner"),
    ("fortinet", "scanner"),
    ("fortiguard", "scanner"),
    ("paloalto", "scanner"),
    ("zscaler", "scanner"),
    ("checkpoint", "scanner"),
    ("kaspersky", "scanner"),
    ("bitdefender", "scanner"),
    ("virustotal", "scanner"),
    ("headlesschrome", "scanner"),
    ("phantomjs", "scanner"),
    ("bingpreview", "bot"),
    ("googlebot", "bot"),
    ("bingbot", "bot"),
    ("slackbot", "bot"),
    ("facebookexternalhit", "bot"),
    ("twitterbot", "bot"),
    ("linkedinbot", "bot"),
    ("discordbot", "bot"),
    ("telegrambot", "bot"),
    ("whatsapp", "bot"),
    ("skypeuripreview", "bot"),
    ("python-requests", "bot"),
    ("python-urllib", "bot"),
    ("python-httpx", "bot"),
    ("aiohttp", "bot"),
    ("go-http-client", "bot"),
    ("curl/", "bot"),
    ("wget/", "bot"),
    ("okhttp", "bot"),
    ("java/", "bot"),
    ("libwww-perl", "bot"),
    ("crawler", "bot"),
    ("spider", "bot"),
)
PROXIES = (("googleimageproxy", "google"), ("yahoomailproxy", "yahoo"))


@dataclass(frozen=True, slots=True)
class Hit:
    """The facts of one request to a tracking URL."""

    kind: str  # "open" or "click"
    method: str
    ip: str
    user_agent: str
    seconds_since_delivery: float | None = None
    # Distinct links of the delivery clicked within the burst window, this one included,
    # and how many links the message has.
    burst: int = 1
    links: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    machine: str | None
    proxy: str | None = None


class NetworkSet:
    """Membership in many networks at once (Apple's list has ~10^5): merged address
    intervals per IP version, searched by bisection."""

    def __init__(self, nets: Iterable[IpNetwork]) -> None:
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        nets = list(nets)
        for version in (4, 6):
            spans = sorted(
                (int(n.network_address), int(n.broadcast_address))
                for n in nets
                if n.version == version
            )
            merged: list[list[int]] = []
            for start, end in spans:
                if merged and start <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([start, end])
            self._starts[version] = [m[0] for m in merged]
            self._ends[version] = [m[1] for m in merged]

    def __contains__(self, address: IpAddress) -> bool:
        starts, value = self._starts[address.version], int(address)
        i = bisect.bisect_right(starts, value) - 1
        return i >= 0 and self._ends[address.version][i] >= value

    def __len__(self) -> int:
        return len(self._starts[4]) + len(self._starts[6])


@dataclass(frozen=True, slots=True)
class Rules:
    """The classifier's settings and networks."""

    apple: NetworkSet = field(default_factory=lambda: NetworkSet(networks(APPLE_NETWORKS)))
    scanners: NetworkSet = field(
        default_factory=lambda: NetworkSet(networks(MICROSOFT_EOP_NETWORKS))
    )
    click_after_delivery_seconds: float = 2.0
    burst_links: int = 3


def networks(texts: Iterable[str]) -> list[IpNetwork]:
    return [ipaddress.ip_network(text.strip(), strict=False) for text in texts]


def apple_egress_networks(csv_text: str) -> list[IpNetwork]:
    """The prefixes of Apple's egress-ip-ranges.csv (``prefix,country,region,city,``);
    lines that do not start with a prefix are skipped."""
    found: list[IpNetwork] = []
    for line in csv_text.splitlines():
        prefix = line.split(",", 1)[0].strip()
        try:
            found.append(ipaddress.ip_network(prefix, strict=False))
        except ValueError:
            continue
    return found


def classify(hit: Hit, rules: Rules) -> Verdict:
    """Person or machine (see the module docstring for the rules and their order)."""
    agent = hit.user_agent.strip()
    address = _address(hit.ip)
    if hit.method.upper() == "HEAD":
        return Verdict("prefetch")
    if hit.kind == "open" and (agent == APPLE_MPP_AGENT or _within(address, rules.apple)):
        return Verdict("apple_mpp")
    by_agent = _agent_verdict(agent)
    if by_agent is not None:
        return by_agent
    if _within(address, rules.scanners):
        return Verdict("scanner")
    if hit.kind == "click":
        since = hit.seconds_since_delivery
        if since is not None and since < rules.click_after_delivery_seconds:
            return Verdict("prefetch")
        if hit.burst >= rules.burst_links or (2 <= hit.links <= hit.burst):
            return Verdict("scanner")
    return Verdict(None)


# Every click and open asks both of these, and a listener sees the same few hundred user
# agents and far fewer addresses than hits: remembering the answers takes the ~50
# substring scans and the address parse off the per-hit path.
@functools.lru_cache(maxsize=4096)
def _agent_verdict(agent: str) -> Verdict | None:
    """What the user agent alone says (a proxy, a bot, a scanner), or None."""
    lowered = agent.lower()
    for fragment, proxy in PROXIES:
        if fragment in lowered:
            return Verdict(None, proxy)
    if not agent:
        return Verdict("bot")
    for fragment, machine in AGENT_RULES:
        if fragment in lowered:
            return Verdict(machine)
    return None


@functools.lru_cache(maxsize=16384)
def _address(text: str) -> IpAddress | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: IpAddress | None, nets: NetworkSet) -> bool:
    return address is not None and address in nets
