"""``pytest-postroom``: fixtures that give a test suite a real Postroom to send to.

Registered as a ``pytest11`` entry point, so installing Postroom makes the fixtures
available; nothing starts until a test asks for one by name:

- ``postroom_server`` (session): a Postroom listening on a free loopback port, on SQLite
  in a temporary directory, delivering into its sandbox. Has ``url``, ``api_host``
  (``127.0.0.1:PORT``, what an SDK's host setting wants), ``token``, ``account_id``,
  ``inbox_id`` and ``client()``.
- ``postroom_tls_server`` (session): the same over HTTPS with a self-signed certificate
  (``ca_file``), for the official SDKs, which speak HTTPS only.
- ``postroom_sandbox`` (per test): a :class:`~postroom.testing.sandbox.Sandbox` on that
  inbox that sees only mail sent during the test: ``next_mail(to=...)`` and the mail's
  ``text``, ``html``, ``links``, ``attachments``, ``headers`` and ``template_variables``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
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
    # HTTPS servers (postroom_tls_server): the certificate to trust; None over HTTP.
    ca_file: Path | None = None
    _client: PostroomClient | None = field(default=None, repr=False)

    @property
    def api_host(self) -> str:
        """``127.0.0.1:PORT``: the host an SDK or anymail's ``MAILTRAP_API_URL`` needs."""
        return self.url.removeprefix("http://").removeprefix("https://")

    def client(self) -> PostroomClient:
        """A shared API client with the admin token."""
        if self._client is None:
            self._client = self._local.client()
        return self._client

    def sandbox(self, inbox_id: int | None = None) -> Sandbox:
        """Assertions on an inbox (default: the one sandbox delivery captures into)."""
        return Sandbox(self.client(), inbox_id or self.inbox_id)


def _serve(tmp_path_factory: pytest.TempPathFactory, tls: bool) -> Iterator[PostroomServer]:
    # Imported here: a suite that never asks for a fixture never loads the server.
    from postroom.testing.server import LocalPostroom

    local = LocalPostroom(tmp_path_factory.mktemp("postroom"), tls=tls)
    started = local.start()
    server = PostroomServer(
        started.url, started.token, started.account_id, started.inbox_id, local, started.ca_file
    )
    try:
        yield server
    finally:
        if server._client is not None:
            server._client.close()
        local.stop()


@pytest.fixture(scope="session")
def postroom_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostroomServer]:
    """A Postroom over HTTP for the whole session (started on first use)."""
    yield from _serve(tmp_path_factory, tls=False)


@pytest.fixture(scope="session")
def postroom_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostroomServer]:
    """A Postroom over HTTPS (self-signed; trust ``ca_file``) for the official SDKs, which
    speak HTTPS only."""
    yield from _serve(tmp_path_factory, tls=True)


@pytest.fixture
def postroom_sandbox(postroom_server: PostroomServer) -> Sandbox:
    """The sandbox inbox, as seen from the start of this test."""
    return postroom_server.sandbox()
