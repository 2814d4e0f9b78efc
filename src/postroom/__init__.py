"""Postroom: a self-hosted Email API and MTA, wire-compatible with the Mailtrap Email API.

Importing the package has no side effects; see ``postroom.cli`` for the entry points.
"""

__version__ = "0.1.0.dev0"
