"""A real authoritative name server on loopback for tests, built on dnslib.

:class:`LocalDnsServer` answers UDP and TCP on 127.0.0.1 and one free port, from a zone
tests change while it runs::

    with LocalDnsServer() as server:
        server.add_txt("example.com", "v=spf1 include:_spf.postroom.test ~all")
        resolver = DnsPythonResolver(server.address)

Behaviour a real authoritative server has, and tests rely on:

- unknown names answer NXDOMAIN; known names without the asked type answer NOERROR with
  no records (NODATA), and so do empty non-terminals (``_domainkey.example.com`` when
  only ``s1._domainkey.example.com`` exists, RFC 8020);
- a name holding a CNAME answers it for every type, followed by the target's records
  when the target is in the zone (as an authoritative server chases inside its zone);
- TXT values longer than 255 bytes go out as several character-strings;
- UDP answers larger than the client's buffer (512 bytes without EDNS) are truncated
  (TC), so the client retries over TCP.

Failure switches: ``fail_with = "SERVFAIL"`` (any RCODE name) answers every query with
that code; ``drop = True`` answers nothing, so clients time out.

The ``dns_server`` pytest fixture yields a started server.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

import dns.resolver
import pytest
from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSError, DNSRecord
from dnslib.server import DNSLogger, DNSServer

TTL = 60
_MAX_CNAME_CHAIN = 8


def _key(name: str) -> str:
    return name.rstrip(".").lower()


def _txt_strings(value: str) -> list[bytes]:
    # RFC 1035 §3.3.14: a TXT record is a list of strings of at most 255 bytes each.
    data = value.encode()
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]


class Zone:
    """A thread-safe map of ``(name, type)`` to record data, changed while serving."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], list[Any]] = {}

    def add(self, name: str, rtype: str, rdata: Any) -> None:
        with self._lock:
            self._records.setdefault((_key(name), rtype), []).append(rdata)

    def remove(self, name: str, rtype: str | None = None) -> None:
        """Remove the name's records of ``rtype``, or all of them."""
        with self._lock:
            for key in [k for k in self._records if k[0] == _key(name)]:
                if rtype is None or key[1] == rtype:
                    del self._records[key]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def exists(self, name: str) -> bool:
        # A name exists if it owns records or is an ancestor of one that does.
        with self._lock:
            return any(n == name or n.endswith("." + name) for n, _ in self._records)

    def get(self, name: str, rtype: str) -> list[Any]:
        with self._lock:
            return list(self._records.get((name, rtype), []))

    def answer(self, name: str, rtype: str) -> list[RR]:
        """The answer section for ``name``/``rtype``, chasing CNAMEs inside the zone."""
        records: list[RR] = []
        for _ in range(_MAX_CNAME_CHAIN):
            cnames = self.get(name, "CNAME")
            if not cnames or rtype == "CNAME":
                break
            records.append(RR(name, QTYPE.CNAME, rdata=cnames[0], ttl=TTL))
            name = _key(str(cnames[0].label))
        qtype = getattr(QTYPE, rtype)
        records += [RR(name, qtype, rdata=rdata, ttl=TTL) for rdata in self.get(name, rtype)]
        return records


class _ZoneResolver:
    """The dnslib resolver: looks the question up in the server's zone."""

    def __init__(self, server: LocalDnsServer) -> None:
        self.server = server

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        if self.server.drop:
            # dnslib's handler sends nothing when the resolver raises DNSError.
            raise DNSError("dropped on purpose")
        reply = request.reply()
        if self.server.fail_with is not None:
            reply.header.rcode = getattr(RCODE, self.server.fail_with)
            return reply
        name, rtype = _key(str(request.q.qname)), QTYPE[request.q.qtype]
        if not self.server.zone.exists(name):
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for rr in self.server.zone.answer(name, rtype):
            reply.add_answer(rr)
        if handler.protocol == "udp" and len(reply.pack()) > _udp_limit(request):
            return _truncated(request)
        return reply


def _udp_limit(request: DNSRecord) -> int:
    # RFC 1035 caps UDP answers at 512 bytes; EDNS0 (RFC 6891) lets the client offer more.
    sizes: list[int] = [rr.rclass for rr in request.ar if rr.rtype == QTYPE.OPT]
    return max([512, *sizes])


def _truncated(request: DNSRecord) -> DNSRecord:
    # Keep the question (dnslib's own truncate() drops it, and clients then reject the
    # reply as not answering their question); TC tells the client to retry over TCP.
    reply = request.reply()
    reply.header.tc = 1
    return reply


class LocalDnsServer:
    """An authoritative DNS server on 127.0.0.1 (UDP and TCP, one port) for tests."""

    def __init__(self) -> None:
        self.zone = Zone()
        self.fail_with: str | None = None
        self.drop = False
        self._servers: list[DNSServer] = []
        self.port = 0

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``, the form ``--dns-server`` and DnsPythonResolver take."""
        return f"127.0.0.1:{self.port}"

    # --- zone edits ---------------------------------------------------------------

    def add_txt(self, name: str, value: str) -> None:
        self.zone.add(name, "TXT", TXT(_txt_strings(value)))

    def add_cname(self, name: str, target: str) -> None:
        self.zone.add(name, "CNAME", CNAME(target))

    def add_mx(self, name: str, preference: int, host: str) -> None:
        self.zone.add(name, "MX", MX(host, preference))

    def add_a(self, name: str, address: str) -> None:
        self.zone.add(name, "A", A(address))

    def add_aaaa(self, name: str, address: str) -> None:
        self.zone.add(name, "AAAA", AAAA(address))

    def remove(self, name: str, rtype: str | None = None) -> None:
        self.zone.remove(name, rtype)

    def publish(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Publish a sending domain's ``dns_records`` as a user pastes them into a DNS
        panel: each replaces any record of the same name and type."""
        adders = {"CNAME": self.add_cname, "TXT": self.add_txt}
        for record in records:
            kind = str(record["type"]).upper()
            if kind not in adders:
                raise AssertionError(f"unexpected record type to publish: {record}")
            self.remove(record["domain"], kind)
            adders[kind](record["domain"], record["value"])

    def dkim_dnsfunc(self) -> Callable[..., bytes]:
        """A ``dnsfunc`` for dkimpy's verifier that reads TXT records from this zone."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port = ["127.0.0.1"], self.port

        def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
            answer = resolver.resolve(name.decode().rstrip("."), "TXT")
            return b"".join(b"".join(rdata.strings) for rdata in answer)

        return dnsfunc

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        resolver = _ZoneResolver(self)
        logger = DNSLogger(logf=lambda _line: None)
        for attempt in range(20):
            udp = DNSServer(resolver, address="127.0.0.1", port=0, logger=logger)
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(resolver, address="127.0.0.1", port=port, tcp=True, logger=logger)
            except OSError:
                # The TCP twin of a free UDP port was taken: pick another port.
                udp.server.server_close()
                if attempt == 19:
                    raise
                continue
            break
        self.port = port
        self._servers = [udp, tcp]
        for server in self._servers:
            # A short poll interval keeps stop() (and so every test's teardown) quick.
            server.thread = threading.Thread(
                target=server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            )
            server.thread.start()

    def stop(self) -> None:
        for server in self._servers:
            server.server.shutdown()
            server.server.server_close()
            server.thread.join(timeout=5)
        self._servers = []

    def __enter__(self) -> LocalDnsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_udp_port() -> int:
    """A UDP port nothing listens on right now (for 'no server there' tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def dns_server() -> Iterator[LocalDnsServer]:
    """A started :class:`LocalDnsServer` with an empty zone."""
    with LocalDnsServer() as server:
        yield server
