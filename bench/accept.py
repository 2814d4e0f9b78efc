"""What the connection gate costs: the API listener's accept path against uvicorn's own.

Starts a server subprocess (uvloop, like ``postroom serve``) with a bare ASGI app that
answers a constant JSON, served either by uvicorn as it comes (``loop.create_server``,
no caps, no header deadline: the reference) or by Postroom's ``HttpListener`` (the accept
path of ``net/acceptor.py`` behind a ``ConnectionGate``, and ``GuardedHttp``'s header
deadline). wrk loads each in turn, alternating, with kept-alive connections and with a
new connection per request (``Connection: close``), and the script prints req/s for both
and the ratio. Needs wrk (``apt-get install -y wrk``).

    .venv/bin/python bench/accept.py [--duration 5] [--connections 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

HOST = "127.0.0.1"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b'{"ok":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"11")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(mode: str, port: int) -> None:
    import uvicorn
    import uvloop

    from postroom.api.listener import HttpListener
    from postroom.net.gate import Caps, ConnectionGate

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(2048)
    config = uvicorn.Config(app, log_level="error", access_log=False, lifespan="off")
    server: uvicorn.Server
    if mode == "uvicorn":
        server = uvicorn.Server(config)
    else:
        gate = ConnectionGate("bench", Caps(100_000, 100_000), setting="bench")
        server = HttpListener(config, gate, header_timeout=20, handshake_timeout=20)
    uvloop.run(server.serve(sockets=[sock]))


def wrk(port: int, duration: int, connections: int, close: bool) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s"]
    if close:
        command += ["-H", "Connection: close"]
    done = subprocess.run(
        [*command, f"http://{HOST}:{port}/"], capture_output=True, text=True, check=True
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    assert match, done.stdout
    return float(match.group(1))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start(mode: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{mode} server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", nargs=2, metavar=("MODE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    results: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.repeat):
        for mode in ("uvicorn", "gated"):
            proc, port = start(mode)
            try:
                wrk(port, 1, args.connections, False)  # warm-up
                for close in (False, True):
                    rate = wrk(port, args.duration, args.connections, close)
                    results.setdefault((mode, close), []).append(rate)
            finally:
                proc.terminate()
                proc.wait(10)
    print(f"{'connections':<22}{'uvicorn req/s':>15}{'gated req/s':>14}{'ratio':>8}")
    for close, label in ((False, "kept alive"), (True, "new per request")):
        reference = statistics.median(results[("uvicorn", close)])
        gated = statistics.median(results[("gated", close)])
        print(f"{label:<22}{reference:>15,.0f}{gated:>14,.0f}{gated / reference:>8.2f}")


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
