"""Settings: every field documented, environment over TOML, nested variable names."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from postroom.config import DeliveryMode, Settings


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    found = []
    for name, info in model.model_fields.items():
        found.append((prefix + name, info.description))
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _fields(annotation, f"{prefix}{name}.")
    return found


def test_every_setting_has_a_description() -> None:
    missing = [name for name, description in _fields(Settings) if not description]
    assert missing == []


def test_environment_variables_are_nested_with_double_underscores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POSTROOM_SERVER__PORT", "9100")
    monkeypatch.setenv("POSTROOM_DELIVERY__MODE", "sandbox")
    settings = Settings()
    assert settings.server.port == 9100
    assert settings.delivery.mode is DeliveryMode.SANDBOX


def test_toml_file_is_read_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "postroom.toml"
    config.write_text('[server]\nport = 9200\nbulk_port = 9201\n[storage]\ndata_dir = "/srv/pr"\n')
    monkeypatch.setenv("POSTROOM_CONFIG", str(config))
    monkeypatch.setenv("POSTROOM_SERVER__PORT", "9300")
    settings = Settings()
    assert settings.server.port == 9300
    assert settings.server.bulk_port == 9201
    assert settings.storage.data_dir == Path("/srv/pr")


def test_database_url_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(storage={"data_dir": tmp_path})
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'postroom.db'}"


def test_egress_and_mta_sts_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POSTROOM_EGRESS__ALLOWED_NETWORKS", '["127.0.0.0/8", "fd00::/8"]')
    monkeypatch.setenv("POSTROOM_MTA_STS__ENABLED", "false")
    settings = Settings()
    assert [str(net) for net in settings.egress.allowed_networks] == ["127.0.0.0/8", "fd00::/8"]
    assert settings.mta_sts.enabled is False
    assert settings.mta_sts.max_policy_bytes == 64 * 1024


def test_allowed_networks_must_be_networks() -> None:
    with pytest.raises(ValueError):
        Settings(egress={"allowed_networks": ["localhost"]})
