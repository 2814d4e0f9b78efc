"""Test helpers: an in-process Postroom and sandbox assertions (the pytest plugin
``pytest-postroom`` is :mod:`postroom.testing.plugin`; see docs/testing.md).

The server (and with it the whole application) is imported on first use only: pytest
loads the plugin, and so this package, in every run of a project that installs Postroom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from postroom.testing.sandbox import Attachment, Mail, Sandbox

if TYPE_CHECKING:
    from postroom.testing.server import LocalPostroom, Started

__all__ = ["Attachment", "LocalPostroom", "Mail", "Sandbox", "Started"]


def __getattr__(name: str) -> Any:
    if name in ("LocalPostroom", "Started"):
        from postroom.testing import server

        return getattr(server, name)
    raise AttributeError(name)
