"""JSON Schema export of the contract, for device vendors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from schemas.payloads import EnergyTelemetry, Event, PoleTelemetry, SignalTelemetry, Status
from schemas.registry import Device

CONTRACT_VERSION = "v1"

EXPORTED_MODELS: dict[str, type[Any]] = {
    "pole.telemetry": PoleTelemetry,
    "signal.telemetry": SignalTelemetry,
    "energy.telemetry": EnergyTelemetry,
    "status": Status,
    "event": Event,
    "device": Device,
}


def contract_json_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema (draft 2020-12) per message type, keyed by file stem."""
    schemas: dict[str, dict[str, Any]] = {}
    for stem, model in EXPORTED_MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"citytel/{CONTRACT_VERSION}/{stem}.schema.json"
        schemas[stem] = schema
    return schemas


def export_json_schemas(directory: Path) -> list[Path]:
    """Write ``<stem>.schema.json`` files into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, schema in contract_json_schemas().items():
        path = directory / f"{stem}.schema.json"
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        written.append(path)
    return written
