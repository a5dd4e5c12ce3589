"""Hostile input on the decode path: whatever the bytes, rows or dead letters, no exception."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from conftest import ADMIN_URL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ingest.decode
from bench.fuzz import FuzzOptions, decode_and_write
from bench.hostile_inputs import DEVICES, FUZZ_CITY, DecodeOutcome, check_decode, dumps, registry
from ingest.batch import Batch
from ingest.decode import DecodePolicy, MessageDecoder
from ingest.metrics import MAX_LABEL_VALUES, CollectorMetrics, count_label
from schemas.limits import MAX_JSON_DEPTH, MAX_UNKNOWN_FIELDS, json_depth
from schemas.topics import Channel, Kind, build_topic

POLE_TOPIC = build_topic(FUZZ_CITY, Kind.POLE, "fz-pole-1", Channel.TELEMETRY)
TS = "2026-11-30T08:00:00.123+08:00"
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decoder() -> MessageDecoder:
    return MessageDecoder(DecodePolicy(), registry())


def _decode(payload: bytes, topic: str = POLE_TOPIC) -> Batch:
    batch = Batch()
    _decoder().decode(topic, payload, batch)
    return batch


def _nested(depth: int, opener: bytes = b"[") -> bytes:
    closer = b"]" if opener == b"[" else b"}"
    inner = b"1" if opener == b"{" else b""
    opening = b'{"a":' if opener == b"{" else b"["
    return opening * depth + inner + closer * depth


def _reason(batch: Batch) -> list[str]:
    return [r.reason for r in batch.refusals]


# --- the property, over generated input ----------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
valid_objects = st.sampled_from(
    [
        (Kind.POLE, Channel.TELEMETRY, {"ts": TS, "lamp_on": True, "pm25_ugm3": 30}),
        (Kind.SIGNAL, Channel.TELEMETRY, {"ts": TS, "mode": "adaptive", "volume": 3}),
        (Kind.ENERGY, Channel.TELEMETRY, {"ts": TS, "pv_kw": 3.0, "load_kw": 4.0}),
        (Kind.SIGNAL, Channel.EVENT, {"ts": TS, "type": "fault", "code": "x", "severity": "info"}),
        (Kind.POLE, Channel.STATUS, {"ts": TS, "online": True}),
    ]
)
_DEVICE_OF = {kind: device for device, kind in DEVICES.items()}


def _topic(kind: Kind, channel: Channel) -> str:
    return build_topic(FUZZ_CITY, kind, _DEVICE_OF[kind], channel)


def _check(topic: str, payload: bytes) -> None:
    outcome = DecodeOutcome()
    check_decode(_decoder(), topic, payload, outcome)
    assert not outcome.escaped, outcome.escaped
    assert not outcome.unaccounted, outcome.unaccounted


@FUZZ
@given(valid_objects, st.text(max_size=12), json_values)
def test_decode_survives_any_value_in_any_field(
    valid: tuple[Kind, Channel, dict[str, Any]], name: str, value: Any
) -> None:
    kind, channel, document = valid
    _check(_topic(kind, channel), dumps({**document, name: value}))


@FUZZ
@given(
    valid_objects,
    st.sampled_from(["ts", "mode", "type", "severity", "x", "device_id", "seq", "online"]),
    st.integers(min_value=1, max_value=1100),
    st.sampled_from([b"[", b"{"]),
    st.booleans(),
)
def test_decode_survives_nesting_at_every_depth(
    valid: tuple[Kind, Channel, dict[str, Any]],
    name: str,
    depth: int,
    opener: bytes,
    in_array: bool,
) -> None:
    kind, channel, document = valid
    document = {k: v for k, v in document.items() if k != name}
    body = orjson.dumps(document)[:-1] + b"," + orjson.dumps(name) + b":" + _nested(depth, opener)
    payload = body + b"}"
    if in_array:
        payload = b"[" + payload + b"," + orjson.dumps(document) + b"]"
    _check(_topic(kind, channel), payload)


@FUZZ
@given(valid_objects, st.data())
def test_decode_survives_byte_mutations(
    valid: tuple[Kind, Channel, dict[str, Any]], data: st.DataObject
) -> None:
    kind, channel, document = valid
    payload = bytearray(orjson.dumps(document))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(payload)))
        chunk = data.draw(st.binary(max_size=6))
        cut = data.draw(st.integers(0, 4))
        payload[at : at + cut] = chunk
    _check(_topic(kind, channel), bytes(payload))


@FUZZ
@given(st.text(max_size=80) | st.sampled_from([POLE_TOPIC + "/x", POLE_TOPIC[:-1]]), json_values)
def test_decode_survives_any_topic(topic: str, value: Any) -> None:
    _check(topic, dumps(value))


async def test_fuzz_run_through_decoder_and_writer_escapes_nothing() -> None:
    """The bench's generator, short: decoded and written into a real database."""
    report = await decode_and_write(FuzzOptions(inputs=3000, seed=7, admin_url=ADMIN_URL))
    assert report.escaped == 0, (report.outcome.escaped[:3], report.write_errors[:3])
    assert not report.outcome.unaccounted
    assert report.outcome.makers["deep_field"] > 100  # the run did try the hostile kinds
    assert report.rows_inserted > 100 and sum(report.dead_letters_by_reason.values()) > 1000
    assert "internal" not in report.dead_letters_by_reason


# --- the bounds, one by one ----------------------------------------------------------------


@pytest.mark.parametrize("depth", [254, 255, 256, 1000, 1022])  # orjson parses 1,024
@pytest.mark.parametrize("field", ["x", "mode", "ts"])
def test_deep_nesting_is_a_schema_refusal_before_any_reencoding(depth: int, field: str) -> None:
    topic = _topic(Kind.SIGNAL, Channel.TELEMETRY)
    payload = b'{"ts": "%s", "mode": "adaptive", "%s": %s}' % (
        TS.encode(),
        field.encode(),
        _nested(depth),
    )
    batch = _decode(payload, topic)
    assert _reason(batch) == ["schema"]
    assert f"deeper than {MAX_JSON_DEPTH}" in batch.refusals[0].detail


def test_nesting_within_the_bound_is_kept_as_extra() -> None:
    payload = b'{"ts": "%s", "lamp_on": true, "cfg": %s}' % (TS.encode(), _nested(6, b"{"))
    batch = _decode(payload)
    assert not batch.refusals and batch.row_count == 1
    assert json_depth(orjson.loads(payload), 50) == 7


def test_gateway_array_with_a_deep_item_is_refused_whole() -> None:
    good = orjson.dumps({"ts": TS, "lamp_on": True})
    batch = _decode(b"[" + good + b"," + _nested(300) + b"]")
    assert _reason(batch) == ["schema"] and batch.row_count == 0


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        ({f"f{i}": i for i in range(MAX_UNKNOWN_FIELDS + 1)}, "33 unknown fields"),
        ({"x" * 65: 1}, "65 characters"),
        ({"": 1}, "0 characters"),
        ({"a\nb": 1}, "control character"),
        ({"a\x00": 1}, "control character"),
    ],
)
def test_unknown_fields_are_bounded(extra: dict[str, int], complaint: str) -> None:
    batch = _decode(orjson.dumps({"ts": TS, "lamp_on": True, **extra}))
    assert _reason(batch) == ["schema"]
    assert complaint in batch.refusals[0].detail


def test_unknown_fields_within_bounds_are_kept() -> None:
    extra = {f"f{i}": i for i in range(MAX_UNKNOWN_FIELDS - 1)} | {"y" * 64: 'q"uote'}
    batch = _decode(orjson.dumps({"ts": TS, "lamp_on": True, **extra}))
    assert not batch.refusals and batch.row_count == 1
    assert len(batch.unknown_fields) == MAX_UNKNOWN_FIELDS


@pytest.mark.parametrize(
    "ts",
    [
        "1700000000",
        "1700000000000",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "1999-12-31T23:59:59Z",
        "2026-11-30 08:00:00Z",
        "2026-11-30T08:00:00+08",
        -1,
        2**63,
        946_684_799_999,
    ],
)
def test_timestamps_outside_the_contract_are_schema_refusals(ts: object) -> None:
    batch = _decode(dumps({"ts": ts, "lamp_on": True}))
    assert _reason(batch) == ["schema"], batch.refusals


@pytest.mark.parametrize("ts", ["2000-01-01T00:00:00Z", 946_684_800_000, "2026-11-30t08:00:00z"])
def test_timestamps_at_the_window_and_in_lower_case_are_accepted(ts: object) -> None:
    assert _decode(dumps({"ts": ts, "lamp_on": True})).row_count == 1


@pytest.mark.allow_logged_exceptions
def test_an_unexpected_exception_is_an_internal_dead_letter_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(item: Any) -> Any:
        raise KeyError("surprise")

    monkeypatch.setitem(ingest.decode._VALIDATORS, (Kind.POLE, Channel.TELEMETRY), broken)
    decoder = _decoder()
    batch = Batch()
    payload = orjson.dumps({"ts": TS, "lamp_on": True})
    with caplog.at_level(logging.ERROR, logger="ingest.decode"):
        for _ in range(3):
            decoder.decode(POLE_TOPIC, payload, batch)
        decoder.decode(POLE_TOPIC, b"[" + payload + b"," + payload + b"]", batch)
    assert _reason(batch) == ["internal"] * 5
    assert batch.refusals[0].detail == "KeyError: 'surprise'"
    assert batch.refusals[3].detail.startswith("object 0 of 2: KeyError")
    assert batch.refusals[3].payload == payload  # the object's own bytes
    logged = [r for r in caplog.records if r.name == "ingest.decode"]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert POLE_TOPIC in logged[0].getMessage()


def test_refused_topics_and_details_are_storable_text() -> None:
    topic = "citytel/v1/\x00/pole/\udcff/telemetry"
    batch = _decode(b"{}", topic)
    (refusal,) = batch.refusals
    assert refusal.reason == "bad_topic"
    refusal.topic.encode("utf-8")
    assert "\x00" not in refusal.topic and "\x00" not in refusal.detail


def test_metric_labels_are_escaped_and_bounded() -> None:
    metrics = CollectorMetrics()
    count_label(metrics.unknown_fields, 'pole.telemetry:a"b\\c\nd')
    text = metrics.render()
    assert 'citytel_unknown_fields_total{field="pole.telemetry:a\\"b\\\\c\\nd"} 1' in text
    for i in range(MAX_LABEL_VALUES + 10):
        count_label(metrics.unknown_fields, f"pole.telemetry:f{i}")
    assert len(metrics.unknown_fields) == MAX_LABEL_VALUES + 1
    assert metrics.unknown_fields["_other"] == 11
