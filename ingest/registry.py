"""The device registry in the database: import, and the collector's in-memory view."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from pydantic import ValidationError

from ingest.errors import RegistryImportError
from schemas.registry import DEVICE_COLUMNS, Device, device_row, read_devices
from schemas.topics import Kind


@dataclass(frozen=True, slots=True)
class RegisteredDevice:
    """What the collector checks a message against."""

    kind: Kind
    city: str


async def upsert_devices(
    conn: asyncpg.Connection, devices: Sequence[Device], *, registered_by: str = "import"
) -> int:
    """Insert or update registry rows in one statement; return how many."""
    if not devices:
        return 0
    await conn.executemany(
        f"INSERT INTO devices ({', '.join(DEVICE_COLUMNS)}, registered_by, updated_at)"
        f" VALUES ({', '.join(f'${i}' for i in range(1, len(DEVICE_COLUMNS) + 2))}, now())"
        " ON CONFLICT (device_id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in DEVICE_COLUMNS if c != "device_id")
        + ", registered_by = excluded.registered_by, updated_at = now()",
        [(*device_row(d), registered_by) for d in devices],
    )
    return len(devices)


def parse_devices(data: bytes, *, fmt: str) -> list[Device]:
    """Validate every record; raise :class:`RegistryImportError` listing every bad row."""
    devices: list[Device] = []
    problems: list[str] = []
    for where, record in read_devices(data, fmt=fmt):
        try:
            devices.append(Device.model_validate(record))
        except ValidationError as exc:
            for error in exc.errors():
                field = ".".join(str(p) for p in error["loc"]) or "row"
                problems.append(f"row {where}: {field}: {error['msg']}")
    if problems:
        raise RegistryImportError(problems)
    return devices


async def import_devices_file(conn: asyncpg.Connection, path: Path) -> int:
    """Import a CSV or JSON registry file; all rows or none."""
    fmt = "csv" if path.suffix.lower() == ".csv" else "json"
    devices = parse_devices(await asyncio.to_thread(path.read_bytes), fmt=fmt)
    async with conn.transaction():
        return await upsert_devices(conn, devices)


async def load_registry(
    conn: asyncpg.Connection, device_ids: Iterable[str] | None = None
) -> dict[str, RegisteredDevice]:
    """The registry as ``device_id -> (kind, city)``; all of it or just ``device_ids``."""
    if device_ids is None:
        rows = await conn.fetch("SELECT device_id, kind, city FROM devices")
    else:
        rows = await conn.fetch(
            "SELECT device_id, kind, city FROM devices WHERE device_id = ANY($1::text[])",
            list(device_ids),
        )
    return {r["device_id"]: RegisteredDevice(Kind(r["kind"]), r["city"]) for r in rows}
