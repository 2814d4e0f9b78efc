"""The one outbound HTTP client: SSRF-safe requests to hosts other people name.

MTA-STS policy hosts (``mta-sts.<recipient domain>``) and customers' webhook URLs
are chosen by strangers, so a request to them must not reach Postroom's own network
(reliability.md §3.5, OWASP API7). :class:`EgressClient` does what the archived
``advocate`` library did, on httpx:

1. resolve the host once, with Postroom's configurable :class:`~postroom.services.dns.Resolver`
   (the ``dns`` settings; the test name server in tests);
2. check *every* address against :class:`~postroom.domain.egress.EgressPolicy`; one
   refused address refuses the host (:class:`EgressRefused`), since a name that mixes
   public and internal addresses is either a mistake or an attack;
3. connect to exactly the address that was checked — the URL given to httpx carries the
   IP, so nothing resolves the name a second time (no DNS-rebinding window) — while the
   TLS handshake still sends the host name as SNI and verifies the certificate against
   it (httpcore's ``sni_hostname`` extension), and ``Host`` names the host;
4. never follow redirects (a 3xx is returned like any status; RFC 8461 §3.3 forbids
   following them and a redirect could point inside), never use a proxy or other
   environment settings (``trust_env=False``), never reuse a connection (a pooled
   connection is keyed by IP and was verified for one host name only);
5. bound the response body (``max_bytes``, counted on the wire, with compressed bodies
   refused so nothing inflates past the bound) and the whole exchange (``timeout``).

Addresses are tried in the resolver's order (IPv4 first) until one connects.

Exceptions: :class:`EgressError` (the request failed: DNS, connection, TLS, timeout,
protocol) with the subclasses :class:`EgressRefused` (the policy forbids the
destination; no connection was attempted) and :class:`ResponseTooLarge`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from postroom import __version__
from postroom.config import Settings
from postroom.domain.egress import EgressPolicy
from postroom.errors import PostroomError
from postroom.services.dns import DnsUnavailable, Resolver

USER_AGENT = f"Postroom/{__version__}"
_DEFAULT_PORTS = {"https": 443, "http": 80}


class EgressError(PostroomError):
    """An outbound HTTP request failed (DNS, connection, TLS, timeout, protocol)."""


class EgressRefused(EgressError):
    """The egress policy forbids the destination; no connection was attempted."""


class ResponseTooLarge(EgressError):
    """The response body was larger than the caller allows."""


@dataclass(frozen=True)
class EgressResponse:
    """A complete response: status, headers, body (≤ ``max_bytes``), the address used."""

    status: int
    headers: httpx.Headers
    body: bytes
    address: str


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # lower-case A-label, or an IP address without brackets
    port: int
    raw_path: bytes  # path and query, as given

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


@dataclass(frozen=True)
class _Exchange:
    method: str
    headers: dict[str, str]
    content: bytes | None
    max_bytes: int
    timeout: float
    truncate: bool = False


def tls_context(ca_bundle: Path | None = None) -> ssl.SSLContext:
    """A verifying client context: ``ca_bundle``'s CAs, or certifi's public ones.

    The host name must be in a subjectAltName (no Common Name fallback, RFC 6125 §6.4.4);
    TLS 1.2 is the floor.
    """
    if ca_bundle is not None:
        context = ssl.create_default_context(cafile=str(ca_bundle))
    else:
        context = httpx.create_ssl_context(trust_env=False)
    context.hostname_checks_common_name = False
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class EgressClient:
    """SSRF-safe HTTP(S) requests; see the module docstring for the rules.

    ``schemes`` lists the URL schemes allowed (HTTPS only by default). The TLS context is
    built once (loading a CA store costs milliseconds); clients are made per request.
    """

    def __init__(
        self,
        resolver: Resolver,
        policy: EgressPolicy,
        *,
        ca_bundle: Path | None = None,
        connect_timeout: float = 10.0,
        schemes: frozenset[str] = frozenset({"https"}),
    ) -> None:
        if not schemes <= _DEFAULT_PORTS.keys():
            raise ValueError(f"only http and https are supported, not {sorted(schemes)}")
        self._resolver = resolver
        self._policy = policy
        self._tls = tls_context(ca_bundle)
        self._connect_timeout = connect_timeout
        self._schemes = schemes

    @classmethod
    def from_settings(cls, settings: Settings, resolver: Resolver) -> EgressClient:
        """The client the ``egress`` settings describe, resolving with ``resolver``."""
        egress = settings.egress
        return cls(
            resolver,
            EgressPolicy.allowing(egress.allowed_networks),
            ca_bundle=egress.ca_bundle,
            connect_timeout=egress.connect_timeout,
        )

    async def get(
        self,
        url: str,
        *,
        max_bytes: int,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> EgressResponse:
        """GET ``url``; see :meth:`request`."""
        return await self.request("GET", url, max_bytes=max_bytes, timeout=timeout, headers=headers)

    async def request(
        self,
        method: str,
        url: str,
        *,
        max_bytes: int,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        truncate: bool = False,
    ) -> EgressResponse:
        """Send one request and read the whole response, within ``timeout`` seconds.

        Any status is returned, 3xx included (never followed). Raises :class:`EgressRefused`
        before connecting when the destination is not allowed, :class:`ResponseTooLarge`
        past ``max_bytes`` (unless ``truncate``: then the body is its first ``max_bytes``
        and the rest is never read), :class:`EgressError` for every other failure.
        """
        target = self._target(url)
        exchange = _Exchange(method, dict(headers or {}), content, max_bytes, timeout, truncate)
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._addresses(target.host)
                return await self._first_connecting(target, addresses, exchange)
        except TimeoutError as exc:
            raise EgressError(f"{target.host}: timed out after {timeout:g} s") from exc

    # --- steps ---------------------------------------------------------------------

    def _target(self, url: str) -> _Target:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise EgressRefused(f"invalid URL: {exc}") from exc
        if parsed.scheme not in self._schemes:
            raise EgressRefused(f"scheme not allowed: {parsed.scheme!r}")
        if parsed.userinfo:
            # Credentials in the URL are a classic filter bypass (http://user@169.254.169.254).
            raise EgressRefused("URLs with credentials are not allowed")
        host = parsed.raw_host.decode("ascii").lower().rstrip(".")
        if not host:
            raise EgressRefused("URL has no host")
        port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
        return _Target(parsed.scheme, host, port, parsed.raw_path)

    async def _addresses(self, host: str) -> list[str]:
        """The checked addresses of ``host``; an IP literal is its own single address."""
        if _is_ip(host):
            addresses = [host]
        else:
            try:
                addresses = list(dict.fromkeys(await self._resolver.a(host)))
            except (DnsUnavailable, ValueError) as exc:
                raise EgressError(f"{host}: address lookup failed: {exc}") from exc
            if not addresses:
                raise EgressError(f"{host}: no address records")
        for address in addresses:
            reason = self._policy.refusal(address)
            if reason is not None:
                raise EgressRefused(f"{host}: {address} is not allowed ({reason})")
        return addresses

    async def _first_connecting(
        self, target: _Target, addresses: list[str], exchange: _Exchange
    ) -> EgressResponse:
        failures: list[str] = []
        for address in addresses:
            try:
                return await self._send(target, address, exchange)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Refused, unreachable, or a TLS handshake/certificate failure: next address.
                failures.append(f"{address}: {exc or type(exc).__name__}")
        raise EgressError(f"{target.host}: could not connect ({'; '.join(failures)})")

    async def _send(self, target: _Target, address: str, exchange: _Exchange) -> EgressResponse:
        url = httpx.URL(
            scheme=target.scheme, host=address, port=target.port, raw_path=target.raw_path
        )
        headers = {
            "User-Agent": USER_AGENT,
            **exchange.headers,
            "Host": target.host_header,
            "Accept-Encoding": "identity",
        }
        # SNI and the certificate check use the host name, never the address we dial.
        extensions = {} if _is_ip(target.host) else {"sni_hostname": target.host}
        async with httpx.AsyncClient(
            verify=self._tls,
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(exchange.timeout, connect=self._connect_timeout),
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
            request = client.build_request(
                exchange.method,
                url,
                headers=headers,
                content=exchange.content,
                extensions=extensions,
            )
            try:
                response = await client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                raise
            except httpx.HTTPError as exc:
                raise EgressError(f"{target.host} ({address}): {exc!r}") from exc
            try:
                body = await _read_capped(response, exchange.max_bytes, exchange.truncate)
            except httpx.HTTPError as exc:
                raise EgressError(f"{target.host} ({address}): {exc!r}") from exc
            finally:
                await response.aclose()
        return EgressResponse(response.status_code, response.headers, body, address)


async def _read_capped(response: httpx.Response, max_bytes: int, truncate: bool = False) -> bytes:
    """The body as sent on the wire (de-chunked), refusing more than ``max_bytes`` (or,
    with ``truncate``, keeping the first ``max_bytes`` and reading no further)."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise EgressError(f"compressed response refused (content-encoding {encoding!r})")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes and not truncate:
        raise ResponseTooLarge(f"response declares {declared} bytes, limit {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > max_bytes:
            if truncate:
                chunks.append(chunk[: max_bytes - (size - len(chunk))])
                break
            raise ResponseTooLarge(f"response exceeds {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
