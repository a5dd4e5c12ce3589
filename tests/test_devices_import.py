"""``citytel devices import``: CSV and JSON registry files into the database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import orjson
from click.testing import Result
from typer.testing import CliRunner

from citytel.cli import app
from core.urls import DatabaseUrl

CSV_HEADER = "device_id,kind,city,district,intersection\n"


async def invoke(database_url: DatabaseUrl, *args: str) -> Result:
    """Run the CLI in a thread: it starts its own event loop, as it does from a shell."""
    runner = CliRunner()
    env = {"CITYTEL_DATABASE_URL": str(database_url)}
    return await asyncio.to_thread(runner.invoke, app, list(args), env=env)


async def test_devices_import_csv_inserts_every_row(
    database_url: DatabaseUrl, db: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(CSV_HEADER + "p1,pole,alpha,north,\ns1,signal,alpha,,Main/1st\n")
    result = await invoke(database_url, "devices", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 2 device(s)" in result.stdout
    rows = await db.fetch("SELECT device_id, intersection, registered_by FROM devices ORDER BY 1")
    assert [tuple(r) for r in rows] == [("p1", None, "import"), ("s1", "Main/1st", "import")]


async def test_devices_import_json_inserts_every_record(
    database_url: DatabaseUrl, db: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "registry.json"
    records = [
        {"device_id": "e1", "kind": "energy", "city": "beta", "pv_capacity_kw": 120.5},
        {"device_id": "p2", "kind": "pole", "city": "beta", "lat": 31.2, "lon": 121.5},
    ]
    path.write_bytes(orjson.dumps(records))
    result = await invoke(database_url, "devices", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 2 device(s)" in result.stdout
    assert await db.fetchval("SELECT pv_capacity_kw FROM devices WHERE device_id = 'e1'") == 120.5


async def test_devices_import_invalid_row_exits_2_and_imports_nothing(
    database_url: DatabaseUrl, db: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(CSV_HEADER + "p1,pole,alpha,,\np2,tram,alpha,,\np3,pole,Bad City,,\n")
    result = await invoke(database_url, "devices", "import", str(path))
    assert result.exit_code == 2
    problems = [line for line in result.stderr.splitlines() if line.startswith("registry.csv:")]
    assert len(problems) == 2
    assert "row 3: kind" in problems[0]
    assert "row 4: city" in problems[1]
    assert await db.fetchval("SELECT count(*) FROM devices") == 0


async def test_devices_import_unparsable_json_exits_2(
    database_url: DatabaseUrl, db: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "registry.json"
    path.write_text('[{"device_id": "p1",')
    result = await invoke(database_url, "devices", "import", str(path))
    assert result.exit_code == 2
    assert "not readable as JSON" in result.stderr


def test_devices_import_help_describes_formats() -> None:
    result = CliRunner().invoke(app, ["devices", "import", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "(CSV or JSON); all rows or none" in result.stdout
    assert "import nothing and exit 2" in result.stdout


async def test_devices_import_csv_accepts_empty_functions_cell(
    database_url: DatabaseUrl, db: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(
        'device_id,kind,city,functions\np1,pole,alpha,"lighting,camera"\ns1,signal,alpha,\n'
    )
    result = await invoke(database_url, "devices", "import", str(path))
    assert result.exit_code == 0, result.output
    assert await db.fetchval("SELECT count(*) FROM devices") == 2
