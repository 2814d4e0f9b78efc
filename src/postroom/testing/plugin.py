"""``pytest-postroom``: fixtures that give a test suite a real Postroom to send to.

Registered as a ``pytest11`` entry point, so installing Postroom makes the fixtures
available; nothing starts until a test asks for one by name:

- ``postroom_server`` (session): a Postroom listening on a free loopback port, on SQLite
  in a temporary directory, delivering into its sandbox. Has ``url``, ``api_host``
  (``127.0.0.1:PORT``, what an SDK's host setting wants), ``token``, ``account_id``,
  ``inbox_id`` and ``client()``.
- ``postroom_sandbox`` (per test): a :class:`~postroom.testing.sandbox.Sandbox` on that
  inbox that sees only mail sent during the test: ``next_mail(to=...)`` and the mail's
  ``text``, ``html``, ``links``, ``attachments``, ``headers`` and ``template_variables``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from postroom.cli.client import PostroomClient
from postroom.testing.sandbox import Sandbox

if TYPE_CHECKING:
    from postroom.testing.server import LocalPostroom


@dataclass
class PostroomServer:
    """A running in-process Postroom and its first (admin) token."""

    url: str
    token: str
    account_id: int
    inbox_id: int
    _local: LocalPostroom = field(repr=False)
    _client: PostroomClient | None = field(default=None, repr=False)

    @property
    def api_host(self) -> str:
        """``127.0.0.1:PORT``: the host an SDK or anymail's ``MAILTRAP_API_URL`` needs."""
        return self.url.removeprefix("http://")

    def client(self) -> PostroomClient:
        """A shared API client with the admin token."""
        if self._client is None:
            self._client = self._local.client()
        return self._client

    def sandbox(self, inbox_id: int | None = None) -> Sandbox:
        """Assertions on an inbox (default: the one sandbox delivery captures into)."""
        return Sandbox(self.client(), inbox_id or self.inbox_id)


@pytest.fixture(scope="session")
def postroom_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostroomServer]:
    """A Postroom for the whole session (started on first use, stopped at the end)."""
    # Imported here: a suite that never asks for the fixture never loads the server.
    from postroom.testing.server import LocalPostroom

    local = LocalPostroom(tmp_path_factory.mktemp("postroom"))
    started = local.start()
    server = PostroomServer(started.url, started.token, started.account_id, started.inbox_id, local)
    try:
        yield server
    finally:
        if server._client is not None:
            server._client.close()
        local.stop()


@pytest.fixture
def postroom_sandbox(postroom_server: PostroomServer) -> Sandbox:
    """The sandbox inbox, as seen from the start of this test."""
    return postroom_server.sandbox()
