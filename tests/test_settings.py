"""Settings: environment, TOML file, one clear line per bad value, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import (
    ApiSettings,
    IngestSettings,
    all_env_names,
    load_settings,
    masked_settings,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CITYTEL_"):
            monkeypatch.delenv(name)


def test_settings_environment_overrides_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "citytel.toml"
    config.write_text(
        'database_url = "postgresql://u:s3cret@db:5432/city"\n'
        '[ingest]\nbatch_max_messages = 2000\nclient_id = "from-file"\n'
    )
    monkeypatch.setenv("CITYTEL_INGEST_CLIENT_ID", "from-env")
    settings = load_settings(IngestSettings, config)
    assert settings.ingest_batch_max_messages == 2000
    assert settings.ingest_client_id == "from-env"
    assert settings.require_database_url().database == "city"


def test_settings_report_every_bad_value_on_its_own_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYTEL_DATABASE_URL", "mysql://db/x")
    monkeypatch.setenv("CITYTEL_MQTT_URL", "mqtt://broker:notaport")
    monkeypatch.setenv("CITYTEL_INGEST_BATCH_MAX_MESSAGES", "0")
    with pytest.raises(ConfigError) as error:
        load_settings(IngestSettings)
    problems = error.value.problems
    assert len(problems) == 3
    assert any(p.startswith("CITYTEL_DATABASE_URL: database URL must start with") for p in problems)
    assert any(p.startswith("CITYTEL_MQTT_URL: MQTT URL has an invalid port") for p in problems)
    assert any(
        "CITYTEL_INGEST_BATCH_MAX_MESSAGES" in p and "greater than or equal to 1" in p
        for p in problems
    )


def test_settings_file_with_unknown_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "citytel.toml"
    config.write_text("[ingest]\nbatch_max_mesages = 10\n")
    with pytest.raises(ConfigError, match="unknown key 'ingest_batch_max_mesages'"):
        load_settings(IngestSettings, config)


def test_settings_refuse_placeholder_secrets_outside_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYTEL_DATABASE_URL", "postgresql://citytel:changeme@db:5432/citytel")
    with pytest.raises(ConfigError, match="placeholder secret"):
        load_settings(ApiSettings)
    monkeypatch.setenv("CITYTEL_DEMO", "true")
    assert load_settings(ApiSettings).demo


def test_settings_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYTEL_DATABASE_URL", "postgresql://citytel:hunter2@db:5432/citytel")
    monkeypatch.setenv("CITYTEL_MQTT_URL", "mqtts://collector:hunter3@broker")
    shown = masked_settings(load_settings(IngestSettings))
    assert shown["CITYTEL_DATABASE_URL"] == "postgresql://citytel:***@db:5432/citytel"
    assert shown["CITYTEL_MQTT_URL"] == "mqtts://collector:***@broker"
    assert "hunter" not in str(shown)
    assert "CITYTEL_INGEST_CLIENT_ID" in all_env_names()


def test_cli_exits_2_with_one_line_per_problem() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYTEL_")}
    env.update(CITYTEL_DATABASE_URL="nope", CITYTEL_API_PORT="99999")
    result = subprocess.run(
        [sys.executable, "-m", "citytel", "config", "show", "--service", "api"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith("config error: CITYTEL_") for line in lines)


@pytest.mark.parametrize(
    "command",
    [
        ["demo"],
        ["collect"],
        ["api"],
        ["simulate"],
        ["db", "migrate"],
        ["db", "status"],
        ["devices", "import"],
        ["dashboards", "build"],
        ["dashboards", "push"],
        ["schemas", "export"],
        ["config", "show"],
        ["deadletters", "list"],
        ["deadletters", "replay"],
        ["bench", "ingest"],
    ],
)
def test_cli_every_subcommand_has_help(command: list[str]) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from citytel.cli import app  # noqa: PLC0415

    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_database_url_accepts_a_unix_socket_host_parameter() -> None:
    from core.urls import DatabaseUrl  # noqa: PLC0415

    url = DatabaseUrl("postgresql://postgres:@/citytel?host=/run/pg")
    assert url.with_database("other").url == "postgresql://postgres:@/other?host=/run/pg"
    with pytest.raises(ValueError, match="no host"):
        DatabaseUrl("postgresql:///citytel")
