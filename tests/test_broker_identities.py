"""Per-device broker identities: ``citytel devices credentials`` on a real Mosquitto.

The broker runs with what the command writes (password file hashed in Python, ACL from
the registry), no anonymous clients, and a TLS listener with a CA made here. A real
collector reads through its own account over TLS; the database says what got through.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import secrets
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from support import (
    BASE_MS,
    collector_settings,
    connect_result,
    make_certificates,
    pole_message,
    publish_all,
    running_collector,
    wait_for_count,
)
from typer.testing import CliRunner, Result

from citytel.cli import app
from core.broker import BrokerAccess, MosquittoProcess, start_mosquitto
from core.broker_auth import check_password, read_password_file
from core.urls import DatabaseUrl, MqttUrl

pytestmark = pytest.mark.timeout(60)


def _credentials(database_url: DatabaseUrl, *args: str) -> Result:
    """``citytel devices credentials ARGS`` (in a thread: the command runs its own loop)."""
    runner = CliRunner()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(
            runner.invoke,
            app,
            ["devices", "credentials", *args],
            env={"CITYTEL_DATABASE_URL": str(database_url)},
        ).result(timeout=30)


def _passwords(folder: Path) -> dict[str, str]:
    rows: dict[str, str] = {}
    for name in ("devices.csv", "collectors.csv"):
        with (folder / name).open(encoding="utf-8") as handle:
            rows.update((row[0], row[1]) for row in list(csv.reader(handle))[1:])
    return rows


async def _register(db: asyncpg.Connection, city: str, devices: dict[str, str]) -> None:
    await db.executemany(
        "INSERT INTO devices (device_id, kind, city) VALUES ($1, $2, $3)",
        [(device_id, kind, city) for device_id, kind in devices.items()],
    )


async def test_credentials_are_private_and_rerunning_rotates_only_what_is_asked(
    db: asyncpg.Connection, database_url: DatabaseUrl, city: str, tmp_path: Path
) -> None:
    out = tmp_path / "fleet"
    await _register(db, city, {"p-1": "pole", "p-2": "pole", "s-1": "signal"})
    result = await asyncio.to_thread(_credentials, database_url, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in ("passwd", "acl", "devices.csv", "collectors.csv"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    first = _passwords(out)
    assert set(first) == {"p-1", "p-2", "s-1", "collector"}
    assert len(set(first.values())) == 4 and all(len(pw) >= 32 for pw in first.values())
    hashes = read_password_file(out / "passwd")
    assert all(check_password(first[user], hashes[user]) for user in first)
    acl = (out / "acl").read_text()
    assert f"user p-1\ntopic write citytel/v1/{city}/pole/p-1/+\n" in acl
    assert f"user s-1\ntopic write citytel/v1/{city}/signal/s-1/+\n" in acl
    assert "user collector\ntopic read citytel/v1/#\n" in acl
    assert "pattern" not in acl and "readwrite" not in acl

    # p-2 leaves the registry, p-3 joins; p-1 gets a new password, the rest keep theirs.
    await db.execute("DELETE FROM devices WHERE device_id = 'p-2'")
    await _register(db, city, {"p-3": "pole"})
    result = await asyncio.to_thread(
        _credentials, database_url, "--out", str(out), "--device", "p-1"
    )
    assert result.exit_code == 0, result.output
    second = _passwords(out)
    assert set(second) == {"p-1", "p-3", "s-1", "collector"}
    assert second["p-1"] != first["p-1"]
    assert second["s-1"] == first["s-1"] and second["collector"] == first["collector"]
    hashes = read_password_file(out / "passwd")
    assert set(hashes) == set(second)
    assert all(check_password(second[user], hashes[user]) for user in second)
    assert "p-2" not in (out / "acl").read_text()

    # Refused: renewing an unknown account, and a collector named like a device.
    for args in (("--device", "nobody"), ("--collector", "s-1")):
        result = await asyncio.to_thread(_credentials, database_url, "--out", str(out), *args)
        assert result.exit_code == 2, result.output
    assert _passwords(out) == second


@dataclass
class Fleet:
    broker: MosquittoProcess
    ca: str
    passwords: dict[str, str]

    def url(self, user: str, *, tls: bool = True) -> str:
        return self.broker.url_for(user, self.passwords[user], tls=tls)


@pytest.fixture
async def fleet(
    db: asyncpg.Connection, database_url: DatabaseUrl, city: str, tmp_path: Path
) -> AsyncIterator[Fleet]:
    """Devices a-1 and b-1 (poles) and c-1 (signal) of ``city``, on a broker of their own."""
    await _register(db, city, {"a-1": "pole", "b-1": "pole", "c-1": "signal"})
    out = tmp_path / "fleet"
    result = await asyncio.to_thread(_credentials, database_url, "--out", str(out))
    assert result.exit_code == 0, result.output
    tls = make_certificates(tmp_path / "tls")
    broker = await asyncio.to_thread(
        start_mosquitto,
        tmp_path / "broker",
        access=BrokerAccess(out / "passwd", out / "acl"),
        tls=tls,
    )
    try:
        yield Fleet(broker, str(tmp_path / "tls" / "ca.crt"), _passwords(out))
    finally:
        broker.stop()


def test_fleet_broker_admits_only_known_accounts(fleet: Fleet) -> None:
    port = fleet.broker.tls_port
    refused = {
        "anonymous": f"mqtts://127.0.0.1:{port}",
        "wrong password": fleet.broker.url_for("a-1", "not-the-password", tls=True),
        "another device's password": fleet.broker.url_for("a-1", fleet.passwords["b-1"], tls=True),
        "no account (the API)": fleet.broker.url_for("api", "anything", tls=True),
    }
    for what, url in refused.items():
        code = connect_result(url, ca_file=fleet.ca)
        assert code is not None and code.is_failure, (what, code)
    for user in ("a-1", "collector"):
        code = connect_result(fleet.url(user), ca_file=fleet.ca)
        assert code is not None and not code.is_failure, (user, code)
    # The plain listener refuses anonymous clients too.
    code = connect_result(fleet.broker.url)
    assert code is not None and code.is_failure


class _Listener:
    """A client of ``url`` subscribed to ``citytel/v1/#``: what does the broker give it?"""

    def __init__(self, url: str, ca: str) -> None:
        mqtt_url = MqttUrl(url)
        self.topics: list[str] = []
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"listen-{secrets.token_hex(4)}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.tls_set(ca_certs=ca)
        self.client.username_pw_set(mqtt_url.username, mqtt_url.password)
        self.client.on_message = lambda *args: self.topics.append(args[2].topic)
        self.client.connect(mqtt_url.host, mqtt_url.port)
        self.client.loop_start()
        self.client.subscribe("citytel/v1/#", qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publish_v5(url: str, ca: str, topic: str, payload: bytes) -> paho.ReasonCode | None:
    """Publish at QoS 1 with MQTT 5; the PUBACK's reason code."""
    mqtt_url = MqttUrl(url)
    codes: list[paho.ReasonCode] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.tls_set(ca_certs=ca)
    client.username_pw_set(mqtt_url.username, mqtt_url.password)
    client.on_publish = lambda *args: codes.append(args[3])
    client.connect(mqtt_url.host, mqtt_url.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while not codes and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0] if codes else None


async def test_device_publishes_only_as_itself_and_collector_only_reads(
    db: asyncpg.Connection, database_url: DatabaseUrl, fleet: Fleet, city: str
) -> None:
    # Every topic, no city filter: a spoof under another city would reach it if allowed.
    settings = collector_settings(database_url, fleet.url("collector"), mqtt_ca_file=fleet.ca)
    assert settings.ingest_group, "the collector reads through a shared subscription"
    listener = await asyncio.to_thread(_Listener, fleet.url("a-1"), fleet.ca)
    try:
        async with running_collector(settings):
            spoofs = [
                pole_message(city, "b-1", BASE_MS),  # another device's id
                (f"citytel/v1/{city}/signal/a-1/telemetry", b'{"ts": 0}'),  # another kind
                pole_message("elsewhere", "a-1", BASE_MS),  # another city
                (f"citytel/v1/{city}/pole/a-1", b"{}"),  # not under its topic
            ]
            own = [pole_message(city, "a-1", BASE_MS + 1)]
            await asyncio.to_thread(publish_all, fleet.url("a-1"), spoofs + own, ca_file=fleet.ca)
            # The collector's account may not publish, not even a valid message.
            topic, payload = pole_message(city, "b-1", BASE_MS + 2)
            code = await asyncio.to_thread(
                _publish_v5, fleet.url("collector"), fleet.ca, topic, payload
            )
            assert code is not None and code.value == 0x87, code  # Not authorized
            await asyncio.to_thread(
                publish_all,
                fleet.url("b-1"),
                [pole_message(city, "b-1", BASE_MS + 3)],
                ca_file=fleet.ca,
            )
            assert await wait_for_count(db, "SELECT count(*) FROM pole_telemetry", 2) == 2
            await asyncio.sleep(0.5)  # anything let through would arrive by now
    finally:
        await asyncio.to_thread(listener.close)
    rows = await db.fetch("SELECT device_id, ts FROM pole_telemetry ORDER BY device_id")
    assert [(r["device_id"], int(r["ts"].timestamp() * 1000)) for r in rows] == [
        ("a-1", BASE_MS + 1),
        ("b-1", BASE_MS + 3),
    ]
    # Not refused by the collector either: the broker never passed the spoofs on.
    assert await db.fetchval("SELECT count(*) FROM dead_letters") == 0
    # a-1 subscribed to everything and was given nothing.
    assert listener.topics == []
