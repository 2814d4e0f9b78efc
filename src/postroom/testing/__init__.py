"""Test helpers: an in-process Postroom and sandbox assertions (the pytest plugin
``pytest-postroom`` is :mod:`postroom.testing.plugin`; see docs/testing.md)."""

from postroom.testing.sandbox import Attachment, Mail, Sandbox
from postroom.testing.server import LocalPostroom, Started

__all__ = ["Attachment", "LocalPostroom", "Mail", "Sandbox", "Started"]
