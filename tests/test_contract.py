"""Contract v1: one valid and one invalid example per rule, topics, exports, SQL shape."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import orjson
import pytest
from pydantic import ValidationError

from ingest.batch import Batch
from ingest.decode import DecodePolicy, MessageDecoder, telemetry_copy_columns
from ingest.registry import RegisteredDevice
from schemas import (
    Device,
    EnergyTelemetry,
    Event,
    Kind,
    PoleTelemetry,
    SignalTelemetry,
    Status,
    TopicError,
    build_topic,
    energy_balance_ok,
    parse_topic,
)
from schemas.export import contract_json_schemas, export_json_schemas
from schemas.payloads import TELEMETRY_TABLES

TS = "2026-11-30T08:00:00.123+08:00"


def make_pole_reading(**overrides: object) -> dict[str, object]:
    return {"ts": TS, "lamp_on": True, "dim_pct": 80, **overrides}


@pytest.mark.parametrize(
    "topic",
    [
        "citytel/v1/jinan/pole/jinan-pole-00001/telemetry",
        "citytel/v1/qingdao/signal/QD.sig_7/event",
        "citytel/v1/yantai-2/energy/E1/status",
    ],
)
def test_topic_parse_accepts_contract_topics(topic: str) -> None:
    assert str(parse_topic(topic)) == topic


@pytest.mark.parametrize(
    ("topic", "complaint"),
    [
        ("citytel/v2/jinan/pole/p1/telemetry", "is not citytel/v1"),
        ("citytel/v1/Jinan/pole/p1/telemetry", "city 'Jinan'"),
        ("citytel/v1/jinan/tram/p1/telemetry", "kind 'tram'"),
        ("citytel/v1/jinan/pole/-p1/telemetry", "device_id '-p1'"),
        ("citytel/v1/jinan/pole/" + "x" * 65 + "/telemetry", "device_id"),
        ("citytel/v1/jinan/pole/p1/debug", "channel 'debug'"),
        ("citytel/v1/jinan/pole/p1/telemetry/extra", "is not citytel/v1"),
    ],
)
def test_topic_parse_names_the_bad_part(topic: str, complaint: str) -> None:
    with pytest.raises(TopicError, match=complaint):
        parse_topic(topic)


def test_topic_build_round_trips() -> None:
    assert build_topic("jinan", Kind.POLE, "p1", "status") == "citytel/v1/jinan/pole/p1/status"


def test_ts_accepts_offsets_and_epoch_ms_and_stores_utc() -> None:
    with_offset = PoleTelemetry.model_validate(make_pole_reading(ts=TS))
    zulu = PoleTelemetry.model_validate(make_pole_reading(ts="2026-11-30T00:00:00.123Z"))
    epoch = PoleTelemetry.model_validate(make_pole_reading(ts=1_795_996_800_123))
    assert with_offset.ts == zulu.ts == epoch.ts == datetime(2026, 11, 30, 0, 0, 0, 123000, UTC)


@pytest.mark.parametrize(
    "ts",
    [
        "2026-11-30T08:00:00",
        "2026-11-30",
        "yesterday",
        1.5e12,
        True,
        None,
        "1795996800",  # a numeric string is not epoch seconds
        "2026-11-30 08:00:00Z",
        "0001-01-01T00:00:00+01:00",  # outside 2000-2100
        "2100-01-01T00:00:00Z",
        10**20,
    ],
)
def test_ts_refuses_naive_or_other_forms(ts: object) -> None:
    with pytest.raises(ValidationError, match="ts"):
        PoleTelemetry.model_validate(make_pole_reading(ts=ts))


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("dim_pct", 100, 100.5),
        ("lamp_power_w", 0, -1),
        ("energy_kwh", 12.5, -0.1),
        ("pm25_ugm3", 1000, 1001),
        ("pm10_ugm3", 2000, 2001),
        ("noise_dba", 150, 151),
        ("temp_c", -50, -51),
        ("humidity_pct", 0, -1),
        ("cell_ues", 0, -1),
        ("tilt_deg", 90, 91),
        ("lamp_on", False, "yes please"),
        ("seq", 0, -1),
    ],
)
def test_pole_fields_follow_their_ranges(field: str, good: object, bad: object) -> None:
    assert getattr(PoleTelemetry.model_validate(make_pole_reading(**{field: good})), field) == good
    with pytest.raises(ValidationError) as refused:
        PoleTelemetry.model_validate(make_pole_reading(**{field: bad}))
    assert refused.value.errors()[0]["loc"] == (field,)


def test_pole_needs_a_measurement_besides_ts() -> None:
    with pytest.raises(ValidationError, match="at least one measurement"):
        PoleTelemetry.model_validate({"ts": TS, "seq": 1})


def test_pole_keeps_unknown_fields_as_extra() -> None:
    reading = PoleTelemetry.model_validate(make_pole_reading(firmware_gpio=3))
    assert reading.__pydantic_extra__ == {"firmware_gpio": 3}


@pytest.mark.parametrize(
    "mode",
    ["off", "flash", "all_red", "manual", "fixed_time", "actuated", "coordinated", "adaptive"],
)
def test_signal_accepts_every_run_mode(mode: str) -> None:
    assert SignalTelemetry.model_validate({"ts": TS, "mode": mode}).mode == mode


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"ts": TS}, "mode"),
        ({"ts": TS, "mode": "green_wave"}, "mode"),
        ({"ts": TS, "mode": "adaptive", "cycle_s": 601}, "cycle_s"),
        ({"ts": TS, "mode": "adaptive", "volume": -3}, "volume"),
        ({"ts": TS, "mode": "adaptive", "occupancy_pct": 101}, "occupancy_pct"),
        ({"ts": TS, "mode": "adaptive", "queue_m": -1}, "queue_m"),
        ({"ts": TS, "mode": "adaptive", "offset_s": -1}, "offset_s"),
    ],
)
def test_signal_refuses_what_the_contract_forbids(payload: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        SignalTelemetry.model_validate(payload)
    assert refused.value.errors()[0]["loc"][0] == field


def test_energy_balance_flags_residuals_beyond_tolerance() -> None:
    # pv + wind + grid + storage = load, within max(2 kW, 5 % of load)
    assert energy_balance_ok(50, 0, 10, 20, 80) is True
    assert energy_balance_ok(50, 0, 10, 18.1, 80) is True  # 1.9 kW off, under 2 kW
    assert energy_balance_ok(500, 0, 0, 0, 520) is True  # 20 kW off, under 5 % of 520
    assert energy_balance_ok(500, 0, 0, 0, 530) is False  # 30 kW off, over 26.5 kW
    assert energy_balance_ok(0, 0, -5, 0, 0) is False  # exporting 5 kW with no source
    assert energy_balance_ok(10, None, None, None, None) is None


def test_energy_refuses_negative_generation_but_allows_export() -> None:
    assert EnergyTelemetry.model_validate({"ts": TS, "grid_kw": -40}).grid_kw == -40
    with pytest.raises(ValidationError, match="pv_kw"):
        EnergyTelemetry.model_validate({"ts": TS, "pv_kw": -1})
    with pytest.raises(ValidationError, match="soc_pct"):
        EnergyTelemetry.model_validate({"ts": TS, "soc_pct": 100.1})


def test_status_and_event_shapes() -> None:
    assert Status.model_validate({"ts": TS, "online": False, "fw": "3.2"}).online is False
    with pytest.raises(ValidationError, match="online"):
        Status.model_validate({"ts": TS})
    event = Event.model_validate(
        {"ts": TS, "type": "fault", "code": "green_conflict", "severity": "critical"}
    )
    assert event.code == "green_conflict"
    for bad in ({"type": "explosion"}, {"severity": "meh"}, {"code": ""}, {"code": "a\x00b"}):
        payload = {"ts": TS, "type": "fault", "code": "lamp_failure", "severity": "warning", **bad}
        with pytest.raises(ValidationError):
            Event.model_validate(payload)


def test_registry_checks_per_kind_attributes() -> None:
    pole = Device.model_validate(
        {"device_id": "p1", "kind": "pole", "city": "jinan", "functions": "lighting,camera"}
    )
    assert [str(f) for f in pole.functions] == ["lighting", "camera"]
    with pytest.raises(ValidationError, match="do not apply to kind pole"):
        Device.model_validate(
            {"device_id": "p1", "kind": "pole", "city": "jinan", "site_type": "residential"}
        )
    with pytest.raises(ValidationError, match="site_type"):
        Device.model_validate(
            {"device_id": "e1", "kind": "energy", "city": "jinan", "site_type": "castle"}
        )


def _decode(
    topic: str,
    payload: bytes,
    *,
    registry: dict[str, RegisteredDevice] | None = None,
    max_future_s: int = 300,
) -> Batch:
    decoder = MessageDecoder(
        DecodePolicy(max_future_s=max_future_s),
        registry if registry is not None else {"p1": RegisteredDevice(Kind.POLE, "jinan")},
    )
    batch = Batch()
    decoder.decode(topic, payload, batch)
    return batch


def test_decoder_refuses_with_each_reason() -> None:
    topic = "citytel/v1/jinan/pole/p1/telemetry"
    cases = {
        "invalid_json": (topic, b"{nope"),
        "too_large": (topic, b"[" + b" " * (256 * 1024) + b"]"),
        "bad_topic": ("citytel/v1/jinan/pole/p1", b"{}"),
        "schema": (topic, orjson.dumps({"ts": TS, "dim_pct": "bright"})),
        "future_ts": (topic, orjson.dumps(make_pole_reading(ts="2099-01-01T00:00:00Z"))),
        "device_mismatch": (topic, orjson.dumps(make_pole_reading(device_id="p2"))),
        "registry_mismatch": (
            "citytel/v1/qingdao/pole/p1/telemetry",
            orjson.dumps(make_pole_reading()),
        ),
    }
    for reason, (name, payload) in cases.items():
        batch = _decode(name, payload)
        assert [r.reason for r in batch.refusals] == [reason], reason
        assert batch.row_count == 0


def test_decoder_defers_unknown_devices_to_the_writer() -> None:
    batch = _decode("citytel/v1/jinan/pole/p9/telemetry", orjson.dumps(make_pole_reading()))
    assert batch.pending and not batch.refusals


def test_decoder_status_array_is_a_schema_refusal() -> None:
    batch = _decode("citytel/v1/jinan/pole/p1/status", b'[{"ts": 1, "online": true}]')
    assert batch.refusals[0].reason == "schema"


def test_decoder_gateway_batch_limits() -> None:
    topic = "citytel/v1/jinan/pole/p1/telemetry"
    ok = [make_pole_reading(ts=1_764_460_800_000 + i) for i in range(1000)]
    assert _decode(topic, orjson.dumps(ok)).row_count == 1000
    too_many = _decode(topic, orjson.dumps([*ok, make_pole_reading()]))
    assert [r.reason for r in too_many.refusals] == ["schema"]
    assert _decode(topic, b"[]").refusals[0].reason == "schema"


def test_json_schema_export_covers_every_message(tmp_path: object) -> None:
    schemas = contract_json_schemas()
    assert set(schemas) == {
        "pole.telemetry",
        "signal.telemetry",
        "energy.telemetry",
        "status",
        "event",
        "device",
    }
    assert schemas["signal.telemetry"]["required"] == ["ts", "mode"]
    assert schemas["pole.telemetry"]["properties"]["dim_pct"]["anyOf"][0]["maximum"] == 100
    from pathlib import Path  # noqa: PLC0415

    written = export_json_schemas(Path(str(tmp_path)))
    assert len(written) == 6 and all(orjson.loads(p.read_bytes())["$id"] for p in written)


async def test_sql_columns_match_the_models(db: asyncpg.Connection) -> None:
    """The tables carry exactly the contract's fields: one definition, checked."""
    for kind, table in TELEMETRY_TABLES.items():
        columns = [
            r["attname"]
            for r in await db.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0"
                " AND NOT attisdropped ORDER BY attnum",
                table,
            )
        ]
        assert columns == [*telemetry_copy_columns(kind), "received_at"], table
