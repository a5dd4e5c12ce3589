"""The production broker set-up, for real: TLS, the password file and ACL made by
``deploy/mosquitto/make-passwd.sh`` (with and without fleet credentials), the compose
health check, and the packet size limit of ``deploy/mosquitto/mosquitto.conf``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from support import (
    BASE_MS,
    collector_settings,
    connect_result,
    make_certificates,
    pole_message,
    publish_all,
    register_poles,
    running_collector,
    wait_for_count,
)

from core.broker import BrokerAccess, MosquittoProcess, start_mosquitto
from core.settings import IngestSettings
from core.urls import DatabaseUrl
from ingest.credentials import write_credentials
from ingest.registry import RegisteredDevice
from schemas.topics import Kind

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto"
COLLECTOR_PASSWORD = "collector-test-secret"
SIMULATOR_PASSWORD = "simulator-test-secret"


def _run(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(args, check=True, capture_output=True, env=env, timeout=60)


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A broker with a TLS listener, the deploy ACL and a password file from the script."""
    folder = tmp_path / "secure"
    tls = make_certificates(folder)
    env = {
        **os.environ,
        "MQTT_PASSWD_FILE": str(folder / "passwd"),
        "MQTT_COLLECTOR_PASSWORD": COLLECTOR_PASSWORD,
        "MQTT_SIMULATOR_PASSWORD": SIMULATOR_PASSWORD,
    }
    _run("sh", str(DEPLOY / "make-passwd.sh"), env=env)
    _run("mosquitto_passwd", "-b", str(folder / "passwd"), "dev-1", "device-secret")
    broker = start_mosquitto(
        folder / "broker", access=BrokerAccess(folder / "passwd", DEPLOY / "acl"), tls=tls
    )
    yield broker
    broker.stop()


def _ca(broker: MosquittoProcess) -> str:
    assert broker.tls is not None
    return str(broker.tls.certfile.with_name("ca.crt"))


async def test_collector_over_tls_with_accounts_and_acl(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    secure_broker: MosquittoProcess,
    city: str,
) -> None:
    ca = _ca(secure_broker)
    await db.execute(
        "INSERT INTO devices (device_id, kind, city) VALUES ('dev-1', 'pole', $1)", city
    )
    others = await register_poles(db, city, 1)
    settings = collector_settings(
        database_url,
        secure_broker.url_for("collector", COLLECTOR_PASSWORD, tls=True),
        city=city,
        mqtt_ca_file=ca,
    )
    async with running_collector(settings):
        simulator = secure_broker.url_for("simulator", SIMULATOR_PASSWORD, tls=True)
        device = secure_broker.url_for("dev-1", "device-secret", tls=True)
        await asyncio.to_thread(
            publish_all, simulator, [pole_message(city, others[0], BASE_MS)], ca_file=ca
        )
        await asyncio.to_thread(
            publish_all, device, [pole_message(city, "dev-1", BASE_MS)], ca_file=ca
        )
        # The ACL lets a device publish only under its own id: the broker drops this one.
        await asyncio.to_thread(
            publish_all, device, [pole_message(city, others[0], BASE_MS + 1)], ca_file=ca
        )
        assert await wait_for_count(db, "SELECT count(*) FROM pole_telemetry", 2) == 2
        await asyncio.sleep(0.5)
    assert await db.fetchval("SELECT count(*) FROM pole_telemetry") == 2


def test_secure_broker_refuses_anonymous_and_wrong_passwords(
    secure_broker: MosquittoProcess,
) -> None:
    ca = _ca(secure_broker)
    port = secure_broker.tls_port
    for url in (f"mqtts://127.0.0.1:{port}", secure_broker.url_for("collector", "x", tls=True)):
        code = connect_result(url, ca_file=ca)
        assert code is not None and code.is_failure, (url, code)
    accepted = connect_result(
        secure_broker.url_for("collector", COLLECTOR_PASSWORD, tls=True), ca_file=ca
    )
    assert accepted is not None and not accepted.is_failure


def _compose_health_check() -> str:
    compose = yaml.safe_load((DEPLOY.parent.parent / "docker-compose.yml").read_text())
    kind, command = compose["services"]["mosquitto"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    return command.replace("$$", "$")  # compose's escape for a literal $


def test_compose_provisioning_with_fleet_credentials(tmp_path: Path) -> None:
    """make-passwd.sh as mqtt-passwd runs it, with `devices credentials` output in the
    fleet folder: the devices' accounts and ACL come from there, the service accounts from
    .env, and the broker's health check passes with the fleet ACL."""
    fleet = tmp_path / "fleet"
    write_credentials(fleet, {"pole-7": RegisteredDevice(Kind.POLE, "jinan")})
    auth = tmp_path / "auth"
    env = {
        **os.environ,
        "MQTT_PASSWD_FILE": str(auth / "passwd"),
        "MQTT_ACL_FILE": str(auth / "acl"),
        "MQTT_DEFAULT_ACL": str(DEPLOY / "acl"),
        "MQTT_FLEET_DIR": str(fleet),
        "MQTT_COLLECTOR_PASSWORD": COLLECTOR_PASSWORD,
        "MQTT_SIMULATOR_PASSWORD": SIMULATOR_PASSWORD,
    }
    _run("sh", str(DEPLOY / "make-passwd.sh"), env=env)
    assert (auth / "acl").read_text() == (fleet / "acl").read_text()
    broker = start_mosquitto(
        tmp_path / "broker", access=BrokerAccess(auth / "passwd", auth / "acl")
    )
    try:
        device_password = (fleet / "devices.csv").read_text().splitlines()[1].split(",")[1]
        fleet_collector = (fleet / "collectors.csv").read_text().splitlines()[1].split(",")[1]
        for url, accepted in (
            (broker.url_for("pole-7", device_password), True),
            (broker.url_for("collector", COLLECTOR_PASSWORD), True),  # .env wins
            (broker.url_for("collector", fleet_collector), False),
        ):
            code = connect_result(url)
            assert code is not None and code.is_failure is not accepted, (url, code)
        check = _compose_health_check().replace("-h 127.0.0.1", f"-h 127.0.0.1 -p {broker.port}")
        healthy = subprocess.run(
            ["sh", "-c", check],
            env={"MQTT_COLLECTOR_PASSWORD": COLLECTOR_PASSWORD, "PATH": os.environ["PATH"]},
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert healthy.returncode == 0, healthy.stderr
    finally:
        broker.stop()


def _hung_up_on(port: int, topic: str, payload: bytes) -> bool:
    """Publish with MQTT 3.1.1 (which has no way to learn the limit); did the broker hang up?"""
    gone: list[object] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv311)
    client.on_disconnect = lambda *args: gone.append(args[3])
    client.connect("127.0.0.1", port)
    client.publish(topic, payload, qos=1)
    deadline = time.monotonic() + 5
    while not gone and time.monotonic() < deadline:
        client.loop(timeout=0.05)  # no network thread, so no reconnect and no resend
    return bool(gone)


def test_production_packet_limit_passes_the_largest_payload_and_stops_bigger(
    tmp_path: Path,
) -> None:
    """With deploy/mosquitto's max_packet_size, a payload at the collector's limit arrives
    and a larger packet never reaches a subscriber."""
    conf = (DEPLOY / "mosquitto.conf").read_text().splitlines()
    limit = next(line for line in conf if line.startswith("max_packet_size "))
    largest = IngestSettings.model_fields["ingest_max_payload_bytes"].default
    broker = start_mosquitto(tmp_path / "broker", extra_config=limit + "\n")
    received: list[int] = []
    subscriber = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    subscriber.on_message = lambda *args: received.append(len(args[2].payload))
    try:
        subscriber.connect("127.0.0.1", broker.port)
        subscriber.loop_start()
        subscriber.subscribe("citytel/v1/#", qos=1)
        time.sleep(0.2)
        topic = "citytel/v1/jinan/pole/p-1/telemetry"
        publish_all(broker.url, [(topic, b"x" * largest)])
        assert _hung_up_on(broker.port, topic, b"x" * (largest + 8192))
        publish_all(broker.url, [(topic, b"after")])
        deadline = time.monotonic() + 5
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()
        broker.stop()
    assert received == [largest, len(b"after")]
