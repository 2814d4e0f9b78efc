"""Connection exhaustion, end to end: ``postroom serve`` as a subprocess under a low
open-file limit (util-linux prlimit), real sockets.

The incident this guards against: ~1,000 idle connections to the inbound port made the
API unreachable for 36 s in a process limited to 1,024 open files, and nothing was
logged. Here 600 idle connections go to the inbound port of a server limited to 400
files; the inbound listener admits its cap and refuses the rest at once, and the API keeps
answering. Also: the soft limit is raised to the hard one and a low limit is reported;
the HTTP listeners' caps (per client and in all) and the header deadline.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from server import HOST, Server, start_server

pytestmark = pytest.mark.slow

# Small caps that fit, with the reserve, under a 400-file limit (no scaling).
SMALL = {
    "POSTROOM_CONNECTIONS__RESERVED_FILES": "64",
    "POSTROOM_DELIVERY__MAX_CONNECTIONS": "8",
    "POSTROOM_CONNECTIONS__API__MAX_CONNECTIONS": "100",
    "POSTROOM_CONNECTIONS__BULK_API__MAX_CONNECTIONS": "50",
    "POSTROOM_CONNECTIONS__SUBMISSION__MAX_CONNECTIONS": "20",
    "POSTROOM_CONNECTIONS__INBOUND__MAX_CONNECTIONS": "50",
    "POSTROOM_CONNECTIONS__INBOUND__MAX_PER_CLIENT": "50",
    "POSTROOM_CONNECTIONS__TRACKING__MAX_CONNECTIONS": "20",
}


@pytest.fixture
def serving(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    env, open_files = request.param
    server = start_server(tmp_path / "data", env=env, open_files=open_files)
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, server.output()


def api_get(server: Server, path: str = "/api/accounts", source: str = HOST) -> int:
    token = server.first_start_token()
    connection = http.client.HTTPConnection(
        HOST, server.port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        return connection.getresponse().status
    finally:
        connection.close()


def read_all(sock: socket.socket, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
            if b"\r\n" in data:
                break
    except (TimeoutError, ConnectionResetError):
        pass
    return data


@pytest.mark.parametrize("serving", [(SMALL, (400, 400))], indirect=True)
def test_a_flood_of_idle_inbound_connections_leaves_the_api_answering(serving: Server) -> None:
    flood: list[socket.socket] = []
    try:
        for _ in range(600):
            flood.append(socket.create_connection((HOST, serving.inbound_port), timeout=10))
        # Every API request is answered (each within the client's 10 s timeout).
        assert [api_get(serving) for _ in range(20)] == [200] * 20
        first_lines = [read_all(sock).split(b"\r\n", 1)[0] for sock in flood]
    finally:
        for sock in flood:
            sock.close()
    banners = [line for line in first_lines if line.startswith(b"220 ")]
    refused = [line for line in first_lines if line.startswith(b"421 4.7.0 Too many connections")]
    assert len(banners) == 50 and len(refused) == 550
    warnings = [line for line in serving.stderr.splitlines() if "refused a connection" in line]
    assert len(warnings) == 1 and "inbound SMTP" in warnings[0] and "WARNING" in warnings[0]
    assert "connections.inbound.max_connections = 50" in warnings[0]


@pytest.mark.parametrize("serving", [({}, (256, 1024))], indirect=True)
def test_serve_raises_the_soft_limit_and_says_when_it_is_low(serving: Server) -> None:
    assert api_get(serving) == 200
    assert "open-file limit raised from 256 to 1024" in serving.stderr
    assert "open-file limit (1024) is low" in serving.stderr


CAPPED = {
    "POSTROOM_CONNECTIONS__API__MAX_PER_CLIENT": "3",
    "POSTROOM_CONNECTIONS__BULK_API__MAX_CONNECTIONS": "2",
}


def hold(port: int, source: str) -> http.client.HTTPConnection:
    """A kept-alive connection the server has admitted (it answered a request on it).

    A connection the readiness probe just closed still counts until the server reads its
    close, so an early attempt may be refused: try again.
    """
    for _ in range(50):
        connection = http.client.HTTPConnection(HOST, port, timeout=10, source_address=(source, 0))
        connection.request("GET", "/api/accounts")
        response = connection.getresponse()
        response.read()
        if response.status != 503:
            return connection
        connection.close()
        time.sleep(0.1)
    raise AssertionError(f"no connection admitted on {port} from {source}")


@pytest.mark.parametrize("serving", [(CAPPED, None)], indirect=True)
def test_http_caps_answer_503_per_client_and_in_all(serving: Server) -> None:
    held = [hold(serving.port, HOST) for _ in range(3)]
    held += [hold(serving.bulk_port, ip) for ip in ("127.0.0.3", "127.0.0.4")]
    try:
        for port, source in ((serving.port, HOST), (serving.bulk_port, "127.0.0.5")):
            connection = http.client.HTTPConnection(
                HOST, port, timeout=10, source_address=(source, 0)
            )
            try:
                connection.request("GET", "/api/accounts")
                response = connection.getresponse()
                assert response.status == 503 and response.getheader("Retry-After") == "1"
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                pass  # closed before the answer was read: also a refusal
            finally:
                connection.close()
        # Another client of the transactional API is still served.
        assert api_get(serving, source="127.0.0.2") == 200
    finally:
        for sock in held:
            sock.close()


def trickled_until_dropped(sock: socket.socket, within: float = 8) -> bool:
    """Send a request's headers a byte at a time; whether the server closes meanwhile."""
    started = time.monotonic()
    sock.sendall(b"GET /api/accounts HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    while time.monotonic() - started < within:
        try:
            sock.sendall(b"a")
        except (BrokenPipeError, ConnectionResetError):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize(
    "serving", [({"POSTROOM_CONNECTIONS__HTTP_HEADER_TIMEOUT": "1"}, None)], indirect=True
)
def test_slow_and_silent_http_clients_are_dropped_after_the_header_deadline(
    serving: Server,
) -> None:
    opened = [socket.create_connection((HOST, serving.port), timeout=10) for _ in range(2)]
    try:
        silent, slow = opened
        assert silent.recv(4096) == b""  # closed, not answered
        assert trickled_until_dropped(slow)
        # On a kept-alive connection, the deadline counts again for the next request.
        second = socket.create_connection((HOST, serving.port), timeout=10)
        opened.append(second)
        second.sendall(b"GET /api/accounts HTTP/1.1\r\nHost: x\r\n\r\n")
        assert second.recv(4096).startswith(b"HTTP/1.1 401")
        assert trickled_until_dropped(second)
    finally:
        for sock in opened:
            sock.close()
    # A kept-alive client that sends its requests promptly is not affected.
    token = serving.first_start_token()
    connection = http.client.HTTPConnection(HOST, serving.port, timeout=10)
    try:
        for _ in range(2):
            connection.request("GET", "/api/accounts", headers={"Authorization": f"Bearer {token}"})
            response = connection.getresponse()
            assert response.status == 200 and response.read()
            time.sleep(0.6)  # idle between requests: the keep-alive timeout's business
    finally:
        connection.close()
