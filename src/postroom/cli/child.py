"""A child of ``postroom serve --processes N`` (started by cli/supervisor.py only).

It reads its start-up facts as one JSON object on stdin: ``settings`` (the parent's
final settings), ``fds`` (listener port to inherited socket descriptor), ``health_fd``
(the shared ``--health-port`` socket, or null) and ``index``.
The parent has migrated the database and made the secret key; the child opens them,
plays every role on the inherited sockets and stops on SIGTERM, or when the parent is
gone (a parent killed outright cannot stop its children itself).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

import orjson

from postroom.config import Settings

PARENT_CHECK_SECONDS = 1.0


def _watch_parent(parent: int) -> None:
    """SIGTERM this process once its parent is gone (it is then re-parented)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    spec: dict[str, Any] = orjson.loads(sys.stdin.buffer.read())
    settings = Settings.model_validate(spec["settings"])
    sockets = {int(port): socket.socket(fileno=int(fd)) for port, fd in spec["fds"].items()}
    health_fd = spec.get("health_fd")
    health = socket.socket(fileno=int(health_fd)) if health_fd is not None else None
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()

    from postroom.cli import logs
    from postroom.cli.main import _loop_factory, open_services
    from postroom.cli.roles import ALL_ROLES
    from postroom.cli.runner import instance_name
    from postroom.cli.runner import serve as run_roles
    from postroom.storage.secrets import load_sealer

    logs.configure(settings.scale.log_format, "all", instance_name())
    services = open_services(settings, migrate=False)
    services.sealer = load_sealer(settings)
    sys.setswitchinterval(0.0005)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run_roles(services, sockets, ALL_ROLES, health_socket=health, freeze=True))
    finally:
        services.db.close()


if __name__ == "__main__":
    main()
