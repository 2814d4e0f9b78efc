"""What a newcomer checks before using the project: the version, the licence, the settings.

- ``postroom --version`` answers the installed version.
- LICENSE is the MIT licence that pyproject.toml declares.
- docs/settings.md is the settings reference generated from the Settings model
  (``./scripts/settings-doc``); a setting added without regenerating it fails here.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from typer.testing import CliRunner

from postroom import __version__
from postroom.cli.main import app
from postroom.cli.settingsdoc import render
from postroom.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_version_option_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"postroom {__version__}\n"
    assert version("postroom") == __version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__


def test_license_file_matches_the_declared_license() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert re.search(r"Copyright \(c\) \d{4} The Postroom authors", text)
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def test_settings_reference_is_current() -> None:
    checked_in = (ROOT / "docs" / "settings.md").read_text()
    assert checked_in == render(), (
        "docs/settings.md is out of date: run ./scripts/settings-doc and commit the result"
    )


def test_settings_reference_names_every_field() -> None:
    text = render()
    for section, info in Settings.model_fields.items():
        model = info.annotation
        assert isinstance(model, type)
        for name in model.model_fields:
            key = f"POSTROOM_{section}__{name}".upper()
            assert f"`{key}`" in text, key
            assert f"`{section}.{name}`" in text
    # Defaults, types and flags are there too.
    assert "| `server.port` | int | `8000` | `POSTROOM_SERVER__PORT` | `--port` |" in text
