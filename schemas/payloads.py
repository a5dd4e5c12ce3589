"""Payload models of contract v1: one per channel, and per kind for telemetry.

These pydantic models are the single source of truth for what a device may send;
the SQL columns, the JSON Schema export and the simulators derive from them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from schemas.timestamps import Timestamp
from schemas.topics import Channel, Kind

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BATCH_OBJECTS = 1000
ENERGY_BALANCE_MIN_KW = 2.0
ENERGY_BALANCE_SHARE = 0.05

# Text stored in PostgreSQL may not contain NUL; refuse it at the contract.
Text = Annotated[str, StringConstraints(max_length=1024, pattern=r"^[^\x00]*$")]
# Integers are stored as bigint.
NonNegInt = Annotated[int, Field(ge=0, le=2**63 - 1)]
NonNegFloat = Annotated[float, Field(ge=0)]


class _Message(BaseModel):
    """Fields every object carries. Unknown fields are kept (``extra``)."""

    model_config = ConfigDict(extra="allow")

    ts: Timestamp
    seq: NonNegInt | None = None
    device_id: str | None = None

    # Fields that are envelope, not measurement.
    envelope_fields: ClassVar[frozenset[str]] = frozenset({"ts", "seq", "device_id"})


class PoleTelemetry(_Message):
    """Multi-function smart pole: lighting, 5G small cell, camera, environment."""

    lamp_on: bool | None = None
    dim_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    lamp_power_w: NonNegFloat | None = None
    energy_kwh: Annotated[float, Field(ge=0, description="cumulative meter")] | None = None
    pm25_ugm3: Annotated[float, Field(ge=0, le=1000)] | None = None
    pm10_ugm3: Annotated[float, Field(ge=0, le=2000)] | None = None
    noise_dba: Annotated[float, Field(ge=0, le=150)] | None = None
    temp_c: Annotated[float, Field(ge=-50, le=70)] | None = None
    humidity_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    cell_online: bool | None = None
    cell_ues: NonNegInt | None = None
    camera_online: bool | None = None
    tilt_deg: Annotated[float, Field(ge=0, le=90)] | None = None
    door_open: bool | None = None

    @model_validator(mode="after")
    def _at_least_one_measurement(self) -> PoleTelemetry:
        for name in POLE_COLUMNS:
            if getattr(self, name) is not None:
                return self
        raise ValueError("pole telemetry needs at least one measurement besides ts")


class SignalMode(StrEnum):
    """Run modes of a signal controller (GB/T 20999-2017 mapping in docs/contract.md)."""

    OFF = "off"
    FLASH = "flash"
    ALL_RED = "all_red"
    MANUAL = "manual"
    FIXED_TIME = "fixed_time"
    ACTUATED = "actuated"
    COORDINATED = "coordinated"
    ADAPTIVE = "adaptive"


class SignalTelemetry(_Message):
    """Traffic signal controller of one intersection."""

    mode: SignalMode
    plan_no: NonNegInt | None = None
    cycle_s: Annotated[float, Field(ge=0, le=600)] | None = None
    stage: NonNegInt | None = None
    offset_s: NonNegFloat | None = None
    volume: Annotated[NonNegInt, Field(description="vehicles since previous report")] | None = None
    occupancy_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    queue_m: NonNegFloat | None = None


class EnergyTelemetry(_Message):
    """Source-grid-load-storage node. Power in kW, sources positive."""

    pv_kw: NonNegFloat | None = None
    wind_kw: NonNegFloat | None = None
    load_kw: NonNegFloat | None = None
    grid_kw: Annotated[float, Field(description="+ import, - export")] | None = None
    storage_kw: Annotated[float, Field(description="+ discharging, - charging")] | None = None
    soc_pct: Annotated[float, Field(ge=0, le=100)] | None = None

    @model_validator(mode="after")
    def _at_least_one_measurement(self) -> EnergyTelemetry:
        for name in ENERGY_COLUMNS:
            if getattr(self, name) is not None:
                return self
        raise ValueError("energy telemetry needs at least one measurement besides ts")


class Status(_Message):
    """Retained status, also the device's MQTT Last Will."""

    online: bool
    fw: Text | None = None


class EventType(StrEnum):
    FAULT = "fault"
    FAULT_CLEARED = "fault_cleared"
    MODE_CHANGE = "mode_change"
    DOOR = "door"
    SOS = "sos"
    INFO = "info"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


SIGNAL_FAULT_CODES = (
    "green_conflict",
    "lamp_failure",
    "detector_failure",
    "comm_loss",
    "clock_drift",
)


class Event(_Message):
    """Something happened at the device: a fault, a mode change, a door opened."""

    type: EventType
    code: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00]*$")]
    severity: Severity
    message: Text | None = None


def _measurement_columns(model: type[_Message]) -> tuple[str, ...]:
    return tuple(name for name in model.model_fields if name not in _Message.envelope_fields)


POLE_COLUMNS = _measurement_columns(PoleTelemetry)
SIGNAL_COLUMNS = _measurement_columns(SignalTelemetry)
ENERGY_COLUMNS = _measurement_columns(EnergyTelemetry)

TELEMETRY_MODELS: dict[Kind, type[_Message]] = {
    Kind.POLE: PoleTelemetry,
    Kind.SIGNAL: SignalTelemetry,
    Kind.ENERGY: EnergyTelemetry,
}
TELEMETRY_COLUMNS: dict[Kind, tuple[str, ...]] = {
    Kind.POLE: POLE_COLUMNS,
    Kind.SIGNAL: SIGNAL_COLUMNS,
    Kind.ENERGY: ENERGY_COLUMNS,
}
TELEMETRY_TABLES: dict[Kind, str] = {kind: f"{kind}_telemetry" for kind in Kind}
EVENT_COLUMNS = ("type", "code", "severity", "message")


def model_for(kind: Kind, channel: Channel) -> type[_Message]:
    """The model that validates one object on ``kind``/``channel``."""
    if channel is Channel.TELEMETRY:
        return TELEMETRY_MODELS[kind]
    if channel is Channel.EVENT:
        return Event
    return Status


def energy_balance_ok(
    pv_kw: float | None,
    wind_kw: float | None,
    grid_kw: float | None,
    storage_kw: float | None,
    load_kw: float | None,
) -> bool | None:
    """The contract's balance check; ``None`` when the load is not reported.

    ``pv + wind + grid + storage = load``; a residual beyond max(2 kW, 5 % of load)
    is a data-quality flag. Missing terms count as zero.
    """
    if load_kw is None:
        return None
    residual = (pv_kw or 0.0) + (wind_kw or 0.0) + (grid_kw or 0.0) + (storage_kw or 0.0) - load_kw
    return abs(residual) <= max(ENERGY_BALANCE_MIN_KW, ENERGY_BALANCE_SHARE * load_kw)


def extra_fields(message: BaseModel) -> dict[str, Any] | None:
    """Unknown fields the device sent, kept for the ``extra`` column."""
    return message.__pydantic_extra__ or None
