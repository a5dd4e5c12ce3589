"""Settings: one pydantic-settings class per service, env prefix ``CITYTEL_``.

Precedence: environment, then the optional TOML file (``--config``), then defaults.
In the TOML file, top-level keys are setting names (``database_url``) and a table
prefixes its keys (``[ingest] batch_max_messages`` is ``ingest_batch_max_messages``).
"""

from __future__ import annotations

import re
import socket
import tomllib
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.errors import ConfigError
from core.urls import DatabaseUrl, DatabaseUrlField, MqttUrl, MqttUrlField, is_placeholder

ENV_PREFIX = "CITYTEL_"
_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar("citytel_file_values", default=None)

Port = Annotated[int, Field(ge=0, le=65535)]
_HTTP_URL = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[^\s/:@\[\]]+)(:\d{1,5})?(/\S*)?$")


class _FileSource(PydanticBaseSettingsSource):
    """Values from the TOML file, already flattened to setting names."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ is used instead

    def __call__(self) -> dict[str, Any]:
        values = _FILE_VALUES.get() or {}
        return {k: v for k, v in values.items() if k in self.settings_cls.model_fields}


class CommonSettings(BaseSettings):
    """What every service shares."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    database_url: DatabaseUrlField | None = Field(
        default=None, description="postgresql://user:pass@host:port/db"
    )
    mqtt_url: MqttUrlField | None = Field(
        default=None, description="mqtt://user:pass@host:port, mqtts:// for TLS"
    )
    mqtt_ca_file: Path | None = Field(default=None, description="CA bundle for mqtts://")
    demo: bool = Field(default=False, description="demo mode: placeholder secrets allowed")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> CommonSettings:
        if self.demo:
            return self
        for name in type(self).model_fields:
            value = getattr(self, name)
            secret = value.password if isinstance(value, DatabaseUrl | MqttUrl) else None
            if name.endswith(("_password", "_token")) and isinstance(value, str):
                secret = value
            if is_placeholder(secret):
                raise ValueError(
                    f"{env_name(name)} holds a placeholder secret; set a real one "
                    f"(placeholders are allowed only with {ENV_PREFIX}DEMO=true)"
                )
        return self

    def require_database_url(self) -> DatabaseUrl:
        if self.database_url is None:
            raise ConfigError([f"{ENV_PREFIX}DATABASE_URL is not set"])
        return self.database_url

    def require_mqtt_url(self) -> MqttUrl:
        if self.mqtt_url is None:
            raise ConfigError([f"{ENV_PREFIX}MQTT_URL is not set"])
        return self.mqtt_url


class DatabaseSettings(CommonSettings):
    """Storage: used by ``db migrate``, ``db status`` and the collector's maintenance."""

    retention_days: Annotated[int, Field(ge=1, le=36500)] = 90
    rollup_retention_days: Annotated[int, Field(ge=1, le=36500)] = Field(
        default=1825, description="keep hourly and daily rollups this long (15-minute: as raw)"
    )
    rollup_timezone: str = Field(
        default="Asia/Shanghai",
        description="time zone of the daily rollups; fixed by the migration that creates them",
    )
    storage: Literal["auto", "postgres", "timescale"] = "auto"
    partitions_ahead_days: Annotated[int, Field(ge=1, le=60)] = 3

    @field_validator("rollup_timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, e.g. Asia/Shanghai)"
            ) from exc
        return value


def default_client_id() -> str:
    return f"citytel-collector-{socket.gethostname()}"[:64]


class IngestSettings(DatabaseSettings):
    """The collector (``citytel collect``)."""

    ingest_client_id: str = Field(default_factory=default_client_id, min_length=1, max_length=64)
    ingest_group: str = Field(default="collectors", pattern=r"^[A-Za-z0-9_.-]*$")
    ingest_topic_filter: str = Field(
        default="citytel/v1/+/+/+/+",
        pattern=r"^citytel/v1/[^#$]*$",
        description="what to subscribe to, e.g. citytel/v1/jinan/+/+/+ for one city",
    )
    ingest_protocol: Literal["5", "3.1.1"] = "5"
    ingest_qos: Literal[1] = 1
    ingest_receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 20000
    ingest_session_expiry_s: Annotated[int, Field(ge=0, le=4294967295)] = 7 * 86400
    ingest_batch_max_messages: Annotated[int, Field(ge=1, le=100000)] = 5000
    ingest_batch_max_age_ms: Annotated[int, Field(ge=1, le=60000)] = 50
    ingest_max_payload_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 256 * 1024
    ingest_max_future_s: Annotated[int, Field(ge=0, le=86400)] = 300
    ingest_unknown_devices: Literal["reject", "register"] = "reject"
    # Per device and collector; beyond it messages are `rate_limited` dead letters (they
    # can be replayed). Far above any device's contract: a report every interval_s (60 s
    # by default), events, status; a buffer flushed after an outage fits in the burst.
    # 0 turns it off. docs/ingest.md, "Hostile input".
    ingest_rate_limit_per_s: Annotated[float, Field(ge=0)] = 50.0
    ingest_rate_limit_burst: Annotated[int, Field(ge=1)] = 2000
    ingest_metrics_host: str = "127.0.0.1"
    ingest_metrics_port: Port = Field(default=9108, description="0: any free port (logged)")
    ingest_maintenance_interval_s: Annotated[float, Field(gt=0)] = 3600.0
    ingest_keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 60
    ingest_last_seen_flush_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    ingest_rollup_refresh_s: Annotated[float, Field(ge=0, le=86400)] = Field(
        default=60.0, description="refresh the rollups this often (0: never, e.g. a second host)"
    )
    ingest_stats_interval_s: Annotated[float, Field(ge=0, le=3600)] = Field(
        default=10.0, description="add a row to collector_stats this often (0: never)"
    )


class ApiSettings(CommonSettings):
    """The HTTP API (``citytel api``)."""

    api_host: str = "127.0.0.1"
    api_port: Port = 8000
    api_pool_max: Annotated[int, Field(ge=1, le=200)] = 10
    api_point_budget: Annotated[int, Field(ge=100, le=1_000_000)] = Field(
        default=10_000,
        description="most points (buckets) a series or aggregate request may ask for",
    )


class SimulatorSettings(CommonSettings):
    """The fleet simulator (``citytel simulate``)."""

    simulator_client_id: str = Field(default="citytel-simulator", max_length=64)


class DashboardSettings(CommonSettings):
    """Grafana dashboards as code (``citytel dashboards``)."""

    grafana_url: str | None = Field(default=None, description="http(s)://host:port of Grafana")
    grafana_token: str | None = Field(default=None, description="service account token")
    grafana_folder: str = "citytel"
    grafana_alert_webhook_url: str | None = Field(
        default=None,
        description="where the alert contact point posts, when push creates it (a stub if unset)",
    )

    @field_validator("grafana_url", "grafana_alert_webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not _HTTP_URL.match(value):
            raise ValueError("not an http(s)://host[:port] URL")
        return value


SERVICE_SETTINGS: tuple[type[CommonSettings], ...] = (
    DatabaseSettings,
    IngestSettings,
    ApiSettings,
    SimulatorSettings,
    DashboardSettings,
)

S = TypeVar("S", bound=CommonSettings)


def env_name(field_name: str) -> str:
    return f"{ENV_PREFIX}{field_name.upper()}"


def all_setting_names() -> set[str]:
    """Every setting of every service, by field name."""
    return {name for cls in SERVICE_SETTINGS for name in cls.model_fields}


def all_env_names() -> set[str]:
    return {env_name(name) for name in all_setting_names()}


def read_config_file(path: Path) -> dict[str, Any]:
    """Read and flatten a TOML config; unknown keys are errors."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from exc
    flat = dict(_flatten(raw))
    known = all_setting_names()
    unknown = [f"{path}: unknown key {key!r}" for key in flat if key not in known]
    if unknown:
        raise ConfigError(unknown)
    return flat


def _flatten(raw: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, f"{name}_")
        else:
            yield name, value


def load_settings(cls: type[S], config_file: Path | None = None, **overrides: Any) -> S:
    """Build ``cls`` from overrides, environment and file; raise :class:`ConfigError`."""
    file_values = read_config_file(config_file) if config_file else {}
    token = _FILE_VALUES.set(file_values)
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise ConfigError([_describe(error) for error in exc.errors()]) from exc
    finally:
        _FILE_VALUES.reset(token)


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if not location:
        return message
    value = error.get("input")
    shown = "" if isinstance(value, dict) or value is None else f" (got {str(value)[:80]!r})"
    return f"{env_name(location)}: {message}{shown}"


def masked_settings(settings: CommonSettings) -> dict[str, str]:
    """Every setting as text, secrets masked, for ``config show``."""
    shown: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, DatabaseUrl | MqttUrl):
            text = value.masked()
        elif name.endswith(("_password", "_token")) and value:
            text = "***"
        else:
            text = "" if value is None else str(value)
        shown[env_name(name)] = text
    return shown
