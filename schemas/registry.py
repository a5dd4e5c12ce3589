"""The device registry: what is installed where. The denominators of every indicator."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Annotated, Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.limits import MAX_TEXT_LENGTH, PRINTABLE_PATTERN
from schemas.topics import CITY_PATTERN, DEVICE_ID_PATTERN, Kind

Text = Annotated[str, Field(max_length=MAX_TEXT_LENGTH, pattern=PRINTABLE_PATTERN)]
"""Free text of the registry: printable, at most 200 characters."""


class PoleFunction(StrEnum):
    LIGHTING = "lighting"
    SMALL_CELL = "small_cell"
    CAMERA = "camera"
    ENVIRONMENT = "environment"
    DISPLAY = "display"
    EV_CHARGER = "ev_charger"
    SOS = "sos"


class SiteType(StrEnum):
    INDUSTRIAL_PARK = "industrial_park"
    PUBLIC_BUILDING = "public_building"
    COMMERCIAL = "commercial"
    RESIDENTIAL = "residential"


class Device(BaseModel):
    """One registry row. Per-kind attributes are empty for the other kinds."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    device_id: Annotated[str, Field(pattern=f"^{DEVICE_ID_PATTERN}$")]
    kind: Kind
    city: Annotated[str, Field(pattern=f"^{CITY_PATTERN}$")]
    district: Text | None = None
    name: Text | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    interval_s: Annotated[float, Field(gt=0, le=86400)] = 60.0
    installed_at: AwareDatetime | None = None
    # pole
    functions: list[PoleFunction] = Field(default_factory=list)
    # signal
    intersection: Text | None = None
    arterial: bool | None = None
    # energy
    site_type: SiteType | None = None
    pv_capacity_kw: Annotated[float, Field(ge=0)] | None = None
    storage_capacity_kwh: Annotated[float, Field(ge=0)] | None = None

    @field_validator("functions", mode="before")
    @classmethod
    def _split_functions(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _attributes_match_kind(self) -> Device:
        foreign = {
            Kind.POLE: (
                "intersection",
                "arterial",
                "site_type",
                "pv_capacity_kw",
                "storage_capacity_kwh",
            ),
            Kind.SIGNAL: ("site_type", "pv_capacity_kw", "storage_capacity_kwh"),
            Kind.ENERGY: ("intersection", "arterial"),
        }[self.kind]
        wrong = [name for name in foreign if getattr(self, name) is not None]
        if self.kind is not Kind.POLE and self.functions:
            wrong.append("functions")
        if wrong:
            raise ValueError(f"attributes {', '.join(wrong)} do not apply to kind {self.kind}")
        return self


DEVICE_COLUMNS = tuple(Device.model_fields)


def device_row(device: Device) -> tuple[Any, ...]:
    """The registry row in :data:`DEVICE_COLUMNS` order, as the database stores it."""
    values = device.model_dump()
    values["functions"] = [str(f) for f in device.functions] or None
    values["kind"] = str(device.kind)
    values["site_type"] = str(device.site_type) if device.site_type else None
    return tuple(values[name] for name in DEVICE_COLUMNS)


def read_devices(data: bytes, *, fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_or_index, raw_record)`` from CSV or JSON (a list or JSON lines)."""
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
        for line, record in enumerate(reader, start=2):
            yield line, {k: (v if v != "" else None) for k, v in record.items() if k}
        return
    text = data.strip()
    if text.startswith(b"["):
        for index, record in enumerate(orjson.loads(text), start=1):
            yield index, record
        return
    for index, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield index, orjson.loads(line)


def write_devices_csv(devices: Iterable[Device]) -> str:
    """Registry rows as CSV, importable with ``citytel devices import``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(DEVICE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for device in devices:
        row = device.model_dump(mode="json")
        row["functions"] = ",".join(row["functions"])
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return out.getvalue()
