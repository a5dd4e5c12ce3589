"""The production broker set-up, for real: TLS, the password file made by
``deploy/mosquitto/make-passwd.sh``, and the ACL in ``deploy/mosquitto/acl``."""

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
from paho.mqtt.enums import CallbackAPIVersion
from support import (
    BASE_MS,
    collector_settings,
    pole_message,
    publish_all,
    register_poles,
    running_collector,
    wait_for_count,
)

from core.broker import AT_LEAST_ONCE_SETTINGS, MosquittoProcess, free_port
from core.urls import DatabaseUrl

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto"
COLLECTOR_PASSWORD = "collector-test-secret"
SIMULATOR_PASSWORD = "simulator-test-secret"


def _run(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(args, check=True, capture_output=True, env=env, timeout=60)


def _make_certificates(folder: Path) -> None:
    """A CA and a server certificate for 127.0.0.1, made with openssl."""
    _run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=citytel test CA",
        "-keyout",
        str(folder / "ca.key"),
        "-out",
        str(folder / "ca.crt"),
    )
    _run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(folder / "server.key"),
        "-out",
        str(folder / "server.csr"),
    )
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _run(
        "openssl",
        "x509",
        "-req",
        "-in",
        str(folder / "server.csr"),
        "-CA",
        str(folder / "ca.crt"),
        "-CAkey",
        str(folder / "ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(folder / "san.ext"),
        "-out",
        str(folder / "server.crt"),
    )


class SecureMosquitto(MosquittoProcess):
    """A broker with a TLS listener, the deploy ACL and a password file."""

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        d = self.data_dir
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"cafile {d / 'ca.crt'}",
            f"certfile {d / 'server.crt'}",
            f"keyfile {d / 'server.key'}",
            "allow_anonymous false",
            f"password_file {d / 'passwd'}",
            f"acl_file {DEPLOY / 'acl'}",
            AT_LEAST_ONCE_SETTINGS,
            "persistence false",
            "log_dest stderr",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        self.config_path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureMosquitto]:
    folder = tmp_path / "secure"
    folder.mkdir()
    _make_certificates(folder)
    env = {
        **os.environ,
        "MQTT_PASSWD_FILE": str(folder / "passwd"),
        "MQTT_COLLECTOR_PASSWORD": COLLECTOR_PASSWORD,
        "MQTT_SIMULATOR_PASSWORD": SIMULATOR_PASSWORD,
    }
    _run("sh", str(DEPLOY / "make-passwd.sh"), env=env)
    _run("mosquitto_passwd", "-b", str(folder / "passwd"), "dev-1", "device-secret")
    broker = SecureMosquitto(port=free_port(), data_dir=folder)
    broker.start()
    yield broker
    broker.stop()


def _url(broker: SecureMosquitto, user: str, password: str) -> str:
    return f"mqtts://{user}:{password}@127.0.0.1:{broker.port}"


async def test_collector_over_tls_with_accounts_and_acl(
    db: asyncpg.Connection,
    database_url: DatabaseUrl,
    secure_broker: SecureMosquitto,
    city: str,
) -> None:
    ca = str(secure_broker.data_dir / "ca.crt")
    await db.execute(
        "INSERT INTO devices (device_id, kind, city) VALUES ('dev-1', 'pole', $1)", city
    )
    others = await register_poles(db, city, 1)
    settings = collector_settings(
        database_url,
        _url(secure_broker, "collector", COLLECTOR_PASSWORD),
        city=city,
        mqtt_ca_file=ca,
    )
    async with running_collector(settings):
        simulator = _url(secure_broker, "simulator", SIMULATOR_PASSWORD)
        device = _url(secure_broker, "dev-1", "device-secret")
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


def _connect_result(port: int, ca: str, user: str | None, password: str | None) -> object:
    """The broker's CONNACK reason for these credentials."""
    codes: list[object] = []
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.tls_set(ca_certs=ca)
    if user:
        client.username_pw_set(user, password)
    client.on_connect = lambda *args: codes.append(args[3])
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        deadline = time.monotonic() + 5
        while not codes and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.loop_stop()
    return codes[0] if codes else None


def test_secure_broker_refuses_anonymous_and_wrong_passwords(
    secure_broker: SecureMosquitto,
) -> None:
    ca = str(secure_broker.data_dir / "ca.crt")
    for user, password in ((None, None), ("collector", "wrong")):
        code = _connect_result(secure_broker.port, ca, user, password)
        assert code is not None and code.is_failure, (user, code)  # type: ignore[attr-defined]
    accepted = _connect_result(secure_broker.port, ca, "collector", COLLECTOR_PASSWORD)
    assert accepted is not None and not accepted.is_failure  # type: ignore[attr-defined]
