"""Which data directory a local command works on, and refusing to create one by mistake.

``postroom serve`` uses ``--data-dir`` (``POSTROOM_STORAGE__DATA_DIR``, or
``storage.data_dir`` in the TOML file), else ``./postroom-data``, and records the
absolute path it used in ``$XDG_STATE_HOME/postroom/last-data-dir``
(``~/.local/state/postroom/last-data-dir`` by default).

The other local commands (``token create``, ``account …``, ``domain …``) take, in order:

1. ``--data-dir`` / ``POSTROOM_STORAGE__DATA_DIR`` / ``storage.data_dir``;
2. ``./postroom-data`` when it exists in the current directory;
3. the directory the last ``postroom serve`` recorded, when it still exists;
4. ``./postroom-data``.

They say on stderr which one they use, and they never create a data directory or an
empty database: with SQLite and no database file they refuse, naming ``--data-dir``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from postroom.config import Settings

DEFAULT = Path("postroom-data")
STATE_FILE = "last-data-dir"


@dataclass(frozen=True, slots=True)
class Choice:
    """The data directory a command uses and why."""

    path: Path
    reason: str


class NoDatabase(RuntimeError):
    """A command that must not create a database found none."""


def state_file() -> Path | None:
    """Where ``serve`` records its data directory (None when there is no home)."""
    base = os.environ.get("XDG_STATE_HOME")
    if base:
        return Path(base) / "postroom" / STATE_FILE
    try:
        return Path.home() / ".local" / "state" / "postroom" / STATE_FILE
    except RuntimeError:
        return None


def recorded() -> Path | None:
    """The data directory of the last ``postroom serve``, if recorded and still there."""
    path = state_file()
    try:
        text = path.read_text(encoding="utf-8").strip() if path else ""
    except OSError:
        return None
    found = Path(text) if text else None
    return found if found is not None and found.is_dir() else None


def record(data_dir: Path) -> None:
    """Remember ``data_dir`` for later commands; silently skipped where it can't be written."""
    path = state_file()
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{data_dir.resolve()}\n", encoding="utf-8")
    except OSError:
        return


def choose(settings: Settings, *, for_serve: bool = False) -> Choice:
    """Apply the rule of this module's docstring to ``settings`` (read as configured)."""
    if "data_dir" in settings.storage.model_fields_set:
        return Choice(settings.storage.data_dir, "--data-dir or POSTROOM_STORAGE__DATA_DIR")
    if for_serve or DEFAULT.is_dir():
        return Choice(DEFAULT, "./postroom-data in the current directory")
    last = recorded()
    if last is not None:
        return Choice(last, f"recorded by the last `postroom serve` in {state_file()}")
    return Choice(DEFAULT, "the default")


def require_database(settings: Settings) -> None:
    """Refuse (NoDatabase) when SQLite would create an empty database file."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        return
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    if not Path(database).exists():
        raise NoDatabase(
            f"no Postroom database at {database}: start the server first (postroom serve), "
            "or point this command at its data with --data-dir DIR (or --database-url URL)"
        )
