"""Tracking's shared policy: the rotating link keys, a domain's tracking settings, and the
URLs of the tracking listener (open pixel, click redirect, unsubscribe, opt-out).

Keys: each rotation period (``tracking.key_rotation_days``) has its own key, derived
from the installation secret (``storage.secrets``) and the period's number, which every
token carries (:mod:`postroom.domain.tracktokens`). New links are signed with the
current period's key; a token verifies while its period is within
``tracking.link_valid_days`` (and not in the future). Nothing is stored: any process
of the installation derives the same keys.

Where links point, per sending domain: its own tracking host ``<tracking_label>.<domain>``
once that CNAME verifies (and ``custom_domain_tracking_enabled`` is on; verification
turns it on), else ``tracking.base_url``, else the listener's own address (with
``domains.mail_host`` when it listens on every interface). With the listener off and no
base URL there is nowhere to count a hit: opens, clicks, the footer links and the https
List-Unsubscribe are left out, and unsubscribing works by mail only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from postroom.config import Settings
from postroom.domain import tracktokens
from postroom.domain.dnsrecords import RecordKey
from postroom.domain.streams import Stream
from postroom.domain.tracktokens import Kind
from postroom.services import Services
from postroom.services.domains import ascii_name
from postroom.storage.secrets import Sealer

DAY = 86_400.0
PATHS = {Kind.OPEN: "o", Kind.CLICK: "c", Kind.UNSUBSCRIBE: "u", Kind.OPT_OUT: "t"}
UNSUBSCRIBE_LOCAL = "u+"


@functools.lru_cache(maxsize=64)
def _key(sealer: Sealer, key_id: int) -> bytes:
    return sealer.derive(f"tracking-link:{key_id}")


def signing_key(services: Services, now: datetime) -> tuple[int, bytes]:
    """The id and key that sign links made now."""
    rotation = services.settings.tracking.key_rotation_days * DAY
    key_id = tracktokens.key_id_at(now.timestamp(), rotation)
    return key_id, _key(services.get_sealer(), key_id)


def verifying_keys(services: Services, now: datetime) -> Callable[[int], bytes | None]:
    """The keys a token may be signed with now (see the module docstring)."""
    cfg = services.settings.tracking
    rotation = cfg.key_rotation_days * DAY
    current = tracktokens.key_id_at(now.timestamp(), rotation)
    oldest = tracktokens.key_id_at(now.timestamp() - cfg.link_valid_days * DAY, rotation)
    sealer = services.get_sealer()

    def keys(key_id: int) -> bytes | None:
        return _key(sealer, key_id) if oldest <= key_id <= current else None

    return keys


def decode(services: Services, text: str, kind: Kind, now: datetime) -> tracktokens.Token | None:
    """The token's facts when it verifies now and is of ``kind``, else None."""
    token = tracktokens.decode(text, verifying_keys(services, now))
    return token if token is not None and token.kind is kind else None


# --- a domain's settings ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DomainTracking:
    """What mail from one sending domain gets, decided once per delivery round."""

    domain_id: int | None
    domain: str  # A-label form
    base: str | None  # where tracking links point; None: nowhere (see module docstring)
    opens: bool = False
    clicks: bool = False
    footer: bool = False
    opt_out_link: bool = False
    transactional_headers: bool = False

    def list_unsubscribe(self, stream: str) -> bool:
        """Whether mail of ``stream`` carries List-Unsubscribe headers."""
        return stream == Stream.BULK.value or self.transactional_headers

    @property
    def changes_body(self) -> bool:
        return self.base is not None and (
            self.opens or self.clicks or self.footer or self.opt_out_link
        )


def domain_tracking(
    settings: Settings, domain: str, row: Mapping[str, Any] | None
) -> DomainTracking:
    """The tracking of mail from ``domain`` (its sending-domain row, if it has one)."""
    name = ascii_name(domain.lower())
    base = base_url(settings, row)
    if row is None:
        return DomainTracking(None, name, base)
    enabled = base is not None
    return DomainTracking(
        int(row["id"]),
        name,
        base,
        opens=enabled and bool(row["open_tracking_enabled"]),
        clicks=enabled and bool(row["click_tracking_enabled"]),
        footer=enabled and bool(row["auto_unsubscribe_link_enabled"]),
        opt_out_link=enabled
        and bool(row["tracking_opt_out_enabled"])
        and bool(row["open_tracking_enabled"] or row["click_tracking_enabled"]),
        transactional_headers=bool(row["list_unsubscribe_transactional_enabled"]),
    )


def custom_host(settings: Settings, row: Mapping[str, Any]) -> str | None:
    """The domain's own tracking host when its CNAME passed its last check."""
    label = settings.domains.tracking_label
    host = f"{label}.{ascii_name(str(row['domain_name']).lower())}"
    results = row.get("dns_results") or {}
    found = results.get(RecordKey.TRACKING.api_key)
    if isinstance(found, dict) and found.get("status") == "pass" and found.get("name") == host:
        return host
    return None


def base_url(settings: Settings, row: Mapping[str, Any] | None) -> str | None:
    cfg = settings.tracking
    if row is not None and row["custom_domain_tracking_enabled"]:
        host = custom_host(settings, row)
        if host is not None:
            return f"{cfg.custom_domain_scheme}://{host}"
    if cfg.base_url:
        return cfg.base_url.rstrip("/")
    if not cfg.port:
        return None
    server = settings.server
    scheme = "https" if server.tls_cert else "http"
    host = cfg.host or server.host
    if host in ("0.0.0.0", "::", ""):
        host = settings.domains.mail_host
    elif ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{cfg.port}"


# --- URLs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Links:
    """Makes one delivery's tracking URLs (signed with the key of the moment)."""

    base: str | None
    delivery_id: str
    key_id: int
    key: bytes
    # Tokens made so far: a copy asks for its unsubscribe token twice (the https URL and
    # the mailto address), and a token is a pure function of the fields above.
    _made: dict[tuple[Kind, int], str] = field(default_factory=dict, compare=False, repr=False)

    def token(self, kind: Kind, position: int = 0) -> str:
        made = self._made.get((kind, position))
        if made is None:
            made = tracktokens.encode(
                kind, self.delivery_id, position, key_id=self.key_id, key=self.key
            )
            self._made[kind, position] = made
        return made

    def url(self, kind: Kind, position: int = 0) -> str:
        if self.base is None:
            raise ValueError("no tracking base URL")
        return f"{self.base}/{PATHS[kind]}/{self.token(kind, position)}"

    def mailto(self, settings: Settings, domain: str) -> str:
        """The unsubscribe address on the return-path domain (the inbound listener's)."""
        label = settings.domains.return_path_label
        return f"mailto:{UNSUBSCRIBE_LOCAL}{self.token(Kind.UNSUBSCRIBE)}@{label}.{domain}"


def links(services: Services, base: str | None, delivery_id: str, now: datetime) -> Links:
    key_id, key = signing_key(services, now)
    return Links(base, delivery_id, key_id, key)
