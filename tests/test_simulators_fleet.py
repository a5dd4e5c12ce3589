"""Fleet generation and the ``citytel simulate`` command."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from citytel.cli import app
from core.broker import MosquittoProcess
from schemas.registry import Device, PoleFunction, read_devices
from schemas.topics import Kind
from simulators import (
    Fleet,
    Manifest,
    OptionsError,
    SimulationOptions,
    parse_duration,
    resolve_window,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*mosquitto.log:pytest.PytestUnraisableExceptionWarning"
)


def test_fleet_generate_is_deterministic_with_city_ids() -> None:
    fleet = Fleet.generate("jinan", poles=12, signals=4, energy=3, seed=7, interval_s=10)
    again = Fleet.generate("jinan", poles=12, signals=4, energy=3, seed=7, interval_s=10)
    assert fleet.devices == again.devices
    ids = [d.device_id for d in fleet.devices]
    assert ids[0] == "jinan-pole-00001" and "jinan-sig-0004" in ids and ids[-1] == "jinan-en-003"
    assert {d.district for d in fleet.devices} <= {
        "lixia",
        "shizhong",
        "huaiyin",
        "tianqiao",
        "licheng",
        "changqing",
        "zhangqiu",
    }
    poles = fleet.of_kind(Kind.POLE)
    assert all(PoleFunction.LIGHTING in d.functions for d in poles)
    assert all(d.intersection and d.arterial is not None for d in fleet.of_kind(Kind.SIGNAL))
    assert all(d.site_type and d.pv_capacity_kw for d in fleet.of_kind(Kind.ENERGY))
    assert Fleet.generate("jinan", 12, 4, 3, seed=8).devices != fleet.devices


def test_fleet_csv_reads_back_as_registry_rows() -> None:
    fleet = Fleet.generate("qingdao", poles=5, signals=2, energy=2, seed=1, interval_s=30)
    rows = [
        Device.model_validate(record)
        for _, record in read_devices(fleet.to_csv().encode(), fmt="csv")
    ]
    assert rows == list(fleet.devices)
    assert all(row.interval_s == 30 for row in rows)


def test_options_window_modes() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert resolve_window(SimulationOptions(duration_s=60), now).mode == "realtime"
    window = resolve_window(SimulationOptions(duration_s=600, speed=60), now)
    assert (window.mode, window.end_ms - window.start_ms) == ("accelerated", 600_000)
    assert window.end_ms == int(now.timestamp() * 1000)  # never ahead of the wall clock
    assert resolve_window(SimulationOptions(duration_s=60, speed=None), now).mode == "backfill"
    with pytest.raises(OptionsError):
        resolve_window(SimulationOptions(speed=None), now)
    assert parse_duration("10m") == 600 and parse_duration("1.5h") == 5400


def test_simulate_command_writes_manifest_and_fleet(
    mosquitto: MosquittoProcess, city: str, tmp_path: Path
) -> None:
    manifest_path, fleet_path = tmp_path / "out.json", tmp_path / "fleet.csv"
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = _invoke_simulate(mosquitto, city, manifest_path, fleet_path)
    finally:  # the command configures logging onto the runner's (then closed) stderr
        root.handlers[:], root.level = handlers, level

    assert result.exit_code == 0, result.output
    manifest = Manifest.read(manifest_path)
    assert manifest.meta["mode"] == "backfill"
    assert (
        manifest.totals["published"]
        == 11
        + 11 * 30
        + manifest.totals["duplicates"]
        + (manifest.by_channel["event"]["published"])
    )
    assert f"{manifest.totals['published']:,} messages" in result.output
    assert len(fleet_path.read_text().splitlines()) == 12
    assert orjson.loads(manifest_path.read_bytes())["format"] == "citytel-simulator-manifest/1"


def _invoke_simulate(
    mosquitto: MosquittoProcess, city: str, manifest_path: Path, fleet_path: Path
) -> Result:
    return CliRunner().invoke(
        app,
        [
            "simulate",
            "--city",
            city,
            "--poles",
            "8",
            "--signals",
            "2",
            "--energy",
            "1",
            "--interval",
            "10s",
            "--duration",
            "5m",
            "--speed",
            "max",
            "--seed",
            "7",
            "--mqtt-url",
            mosquitto.url,
            "--manifest",
            str(manifest_path),
            "--fleet-out",
            str(fleet_path),
            "--duplicate-rate",
            "0.1",
        ],
    )


def test_simulate_command_help_lists_fault_flags() -> None:
    result = CliRunner().invoke(app, ["simulate", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for flag in (
        "--drop-rate",
        "--duplicate-rate",
        "--late-rate",
        "--malformed-rate",
        "--offline-rate",
        "--skew-rate",
        "--manifest",
        "--fleet-out",
        "--speed",
    ):
        assert flag in result.output
