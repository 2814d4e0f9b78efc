"""Use cases: the only layer that coordinates storage, queue and events for the entry points.

:class:`Services` bundles what every use case needs (settings, database, clock, id
factory); entry points build one at start-up and pass it down explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from postroom.clock import Clock, SystemClock
from postroom.config import Settings
from postroom.domain.ids import IdFactory
from postroom.storage.db import Database


@dataclass
class Services:
    """The dependencies of the use cases, passed explicitly (never a global)."""

    settings: Settings
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    ids: IdFactory = field(default_factory=IdFactory)
