"""The device models: lamps follow the sun, energy balances, storage stays within limits."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from schemas.payloads import (
    EnergyTelemetry,
    PoleTelemetry,
    SignalMode,
    SignalTelemetry,
    energy_balance_ok,
)
from schemas.registry import Device, PoleFunction, SiteType
from schemas.topics import Kind
from simulators.cities import PILOT_CITIES
from simulators.energy import SOC_MAX_PCT, SOC_MIN_PCT, EnergySimulator
from simulators.pole import PoleSimulator
from simulators.profiles import CityClock
from simulators.signal import SignalSimulator
from simulators.sun import sun_times

CST = timezone(timedelta(hours=8))
JINAN = PILOT_CITIES["jinan"]
DAY = date(2026, 6, 21)
VALID_TS_MS = 1_795_996_800_000  # any instant the contract accepts: the reports are what is checked


def make_device(kind: Kind, **overrides: object) -> Device:
    values: dict[str, object] = {"device_id": f"jinan-{kind}-1", "kind": kind, "city": "jinan"}
    values.update(overrides)
    return Device.model_validate(values)


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _day_of_reports(sim: object, start: datetime, hours: float, interval_s: float) -> list[dict]:
    first = _ms(start)
    count = int(hours * 3600 / interval_s)
    return [sim.telemetry(first + int(i * interval_s * 1000)) for i in range(count)]  # type: ignore[attr-defined]


def test_pole_lamp_follows_sunset_and_sunrise() -> None:
    pole = PoleSimulator(
        make_device(Kind.POLE, functions=["lighting"]), CityClock(JINAN), 1, interval_s=10
    )
    times = sun_times(JINAN.lat, JINAN.lon, DAY)
    assert times.sunset is not None and times.sunrise is not None
    minute = timedelta(minutes=1)
    assert pole.lamp_state(_ms(times.sunset - minute)) == (False, 0.0)
    assert pole.lamp_state(_ms(times.sunset + minute)) == (True, 100.0)
    assert pole.lamp_state(_ms(times.sunrise - minute)) == (True, 50.0)  # dimmed before 05:00
    assert pole.lamp_state(_ms(times.sunrise + minute)) == (False, 0.0)


def test_pole_dims_late_at_night_and_power_follows() -> None:
    pole = PoleSimulator(
        make_device(Kind.POLE, functions=["lighting"]), CityClock(JINAN), 1, interval_s=10
    )
    evening = pole.telemetry(_ms(datetime(2026, 6, 21, 22, 0, tzinfo=CST)))
    night = pole.telemetry(_ms(datetime(2026, 6, 21, 23, 30, tzinfo=CST)))
    noon = pole.telemetry(_ms(datetime(2026, 6, 22, 12, 0, tzinfo=CST)))
    assert (evening["dim_pct"], night["dim_pct"], noon["dim_pct"]) == (100.0, 50.0, 0.0)
    assert night["lamp_power_w"] == pytest.approx(evening["lamp_power_w"] / 2, rel=0.08)
    assert noon["lamp_power_w"] == 0.0 and noon["lamp_on"] is False
    assert night["energy_kwh"] > evening["energy_kwh"]


def test_pole_reports_validate_over_a_day() -> None:
    functions = [PoleFunction.LIGHTING, PoleFunction.ENVIRONMENT, PoleFunction.SMALL_CELL]
    pole = PoleSimulator(
        make_device(Kind.POLE, functions=functions), CityClock(JINAN), 3, interval_s=60
    )
    reports = _day_of_reports(pole, datetime(2026, 1, 5, tzinfo=CST), 24, 60)
    for report in reports:
        PoleTelemetry.model_validate({**report, "ts": VALID_TS_MS, "seq": 1})
    noise = {r["noise_dba"] for r in reports[: 4 * 60]} | {r["noise_dba"] for r in reports[-60:]}
    rush = [r["noise_dba"] for r in reports[17 * 60 : 19 * 60]]
    assert sum(rush) / len(rush) > max(noise) - 5  # louder at the evening rush than at night
    assert max(r["cell_ues"] for r in reports) > 3 * min(r["cell_ues"] for r in reports)


def test_signal_volume_peaks_morning_and_evening() -> None:
    signal = SignalSimulator(
        make_device(Kind.SIGNAL, arterial=True), CityClock(JINAN), 5, interval_s=60
    )
    reports = _day_of_reports(signal, datetime(2026, 3, 10, tzinfo=CST), 24, 60)  # a Tuesday
    hourly = [sum(r["volume"] for r in reports[h * 60 : (h + 1) * 60]) for h in range(24)]
    assert hourly[8] > 1.3 * hourly[12] and hourly[18] > 1.3 * hourly[12]
    assert hourly[3] < hourly[12] / 2
    for report in reports:
        message = SignalTelemetry.model_validate({**report, "ts": VALID_TS_MS})
        assert message.mode is SignalMode.COORDINATED or signal.fault_code is not None


def _energy_node(storage_kwh: float, seed: int = 11) -> EnergySimulator:
    device = make_device(
        Kind.ENERGY,
        site_type=SiteType.COMMERCIAL,
        pv_capacity_kw=300.0,
        storage_capacity_kwh=storage_kwh,
    )
    return EnergySimulator(device, CityClock(JINAN), seed, interval_s=10)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_energy_balance_holds_and_storage_stays_within_limits(seed: int) -> None:
    node = _energy_node(400.0, seed)
    reports = _day_of_reports(node, datetime(2026, 5, 1, tzinfo=CST), 48, 10)
    soc_prev = None
    for report in reports:
        EnergyTelemetry.model_validate({**report, "ts": VALID_TS_MS})
        assert energy_balance_ok(
            report["pv_kw"],
            report.get("wind_kw"),
            report["grid_kw"],
            report["storage_kw"],
            report["load_kw"],
        )
        residual = report["pv_kw"] + report.get("wind_kw", 0) + report["grid_kw"]
        assert residual + report["storage_kw"] == pytest.approx(report["load_kw"], abs=0.002)
        assert SOC_MIN_PCT - 0.01 <= report["soc_pct"] <= SOC_MAX_PCT + 0.01
        assert abs(report["storage_kw"]) <= node.storage_power_kw + 1e-6
        if soc_prev is not None:  # energy moved matches the SoC change (within rounding)
            moved_kwh = -report["storage_kw"] * 10 / 3600
            assert (report["soc_pct"] - soc_prev) / 100 * 400 == pytest.approx(moved_kwh, abs=0.05)
        soc_prev = report["soc_pct"]
    charging = [r for r in reports if r["storage_kw"] < 0]
    assert charging and all(r["pv_kw"] > r["load_kw"] - 0.01 for r in charging)
    discharging = [r for r in reports if r["storage_kw"] > 0]
    assert discharging


def test_energy_pv_follows_the_sun() -> None:
    node = _energy_node(0.0)
    reports = _day_of_reports(node, datetime(2026, 6, 21, tzinfo=CST), 24, 10)
    by_hour = [max(r["pv_kw"] for r in reports[h * 360 : (h + 1) * 360]) for h in range(24)]
    assert by_hour[0] == 0.0 and by_hour[23] == 0.0
    assert by_hour[12] > 0.6 * 300 * 0.85
    assert all("storage_kw" not in r for r in reports)  # no battery, no storage fields
