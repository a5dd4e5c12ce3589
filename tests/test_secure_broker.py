"""The production broker set-up, for real: TLS, the password file made by
``deploy/mosquitto/make-passwd.sh``, and the ACL in ``deploy/mosquitto/acl``."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
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
from core.urls import DatabaseUrl

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
