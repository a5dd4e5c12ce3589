"""``citytel simulate``: publish a simulated city fleet over MQTT (see docs/simulators.md)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from citytel.commands.options import ConfigOption, settings_for
from core.settings import SimulatorSettings
from simulators import (
    DEAD_LETTER_REASONS,
    FaultRates,
    Fleet,
    Manifest,
    OptionsError,
    PublishError,
    SimulationOptions,
    city_for,
    parse_duration,
    parse_instant,
    parse_speed,
    run_simulation,
)


def simulate(
    config: ConfigOption = None,
    city: Annotated[
        str, typer.Option(help="City name; jinan, qingdao, jining, yantai have real coordinates.")
    ] = "jinan",
    poles: Annotated[int, typer.Option(min=0, help="Number of smart poles.")] = 100,
    signals: Annotated[int, typer.Option(min=0, help="Number of signal controllers.")] = 20,
    energy: Annotated[int, typer.Option(min=0, help="Number of energy (PV/storage) nodes.")] = 5,
    interval: Annotated[
        str, typer.Option(help="Report interval per device, e.g. 10s, 1m.")
    ] = "10s",
    duration: Annotated[
        str | None, typer.Option(help="Simulated time span, e.g. 10m, 2h; default: until Ctrl-C.")
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Window start (ISO date/time; local city time if no offset)."),
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Window end (ISO date/time); default: now.")
    ] = None,
    speed: Annotated[
        str | None,
        typer.Option(
            help="1 = real time, 60 = 60x, max = backfill as fast as the broker takes. "
            "Default: 1, or max with --from."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same fleet and messages.")] = 1,
    mqtt_url: Annotated[
        str | None, typer.Option(help="Override CITYTEL_MQTT_URL (mqtt://user:pass@host:port).")
    ] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Write what was sent (the test oracle) as JSON here.")
    ] = None,
    fleet_out: Annotated[
        Path | None, typer.Option(help="Write the fleet's registry rows as CSV (devices import).")
    ] = None,
    adaptive_share: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of non-arterial signals in adaptive mode."),
    ] = 0.35,
    connections: Annotated[
        int, typer.Option(min=1, max=64, help="Shared MQTT connections to publish on.")
    ] = 2,
    drop_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of reports never sent.")
    ] = 0.0,
    duplicate_rate: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of reports published twice (identical bytes)."),
    ] = 0.0,
    late_rate: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of reports buffered offline and flushed minutes later."
        ),
    ] = 0.0,
    malformed_rate: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of reports with broken JSON, bad values or a bad topic."
        ),
    ] = 0.0,
    offline_rate: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of reports missed while offline (Last Will episodes)."
        ),
    ] = 0.0,
    skew_rate: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of reports with a skewed clock (half beyond +5 min)."
        ),
    ] = 0.0,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress", help="Progress bar (default: on unless real time)."
        ),
    ] = None,
) -> None:
    """Publish a simulated fleet of poles, signals and energy nodes over MQTT."""
    settings = settings_for(SimulatorSettings, config, mqtt_url=mqtt_url)
    url = settings.require_mqtt_url()
    try:
        options = _options(
            city=city,
            poles=poles,
            signals=signals,
            energy=energy,
            interval=interval,
            duration=duration,
            from_=from_,
            to=to,
            speed=speed,
            seed=seed,
            adaptive_share=adaptive_share,
            connections=connections,
            client_id=settings.simulator_client_id,
            faults=FaultRates(
                drop_rate, duplicate_rate, late_rate, malformed_rate, offline_rate, skew_rate
            ),
        )
    except OptionsError as exc:
        raise typer.BadParameter(str(exc)) from exc
    fleet = Fleet.generate(city, poles, signals, energy, seed, interval_s=options.interval_s)
    if fleet_out is not None:
        fleet.write_csv(fleet_out)
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    show_progress = progress if progress is not None else options.speed != 1.0 or bool(from_)
    try:
        result = run_simulation(
            options,
            url,
            stop_event=stop,
            progress=show_progress and sys.stderr.isatty(),
            ca_file=settings.mqtt_ca_file,
            fleet=fleet,
        )
    except (OptionsError, PublishError) as exc:
        Console(stderr=True).print(f"[red]simulate: {exc}")
        raise typer.Exit(1) from exc
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if manifest is not None:
        result.write(manifest)
    print_summary(result)


def _options(
    *,
    city: str,
    poles: int,
    signals: int,
    energy: int,
    interval: str,
    duration: str | None,
    from_: str | None,
    to: str | None,
    speed: str | None,
    seed: int,
    adaptive_share: float,
    connections: int,
    client_id: str,
    faults: FaultRates,
) -> SimulationOptions:
    offset = city_for(city).utc_offset_s
    if speed is None:
        speed = "max" if from_ else "1"
    return SimulationOptions(
        city=city,
        poles=poles,
        signals=signals,
        energy=energy,
        seed=seed,
        interval_s=parse_duration(interval),
        duration_s=parse_duration(duration) if duration else None,
        start=parse_instant(from_, offset) if from_ else None,
        end=parse_instant(to, offset) if to else None,
        speed=parse_speed(speed),
        faults=faults,
        adaptive_share=adaptive_share,
        connections=connections,
        client_id=client_id,
    )


def print_summary(result: Manifest) -> None:
    meta, totals = result.meta, result.totals
    console = Console()
    console.print(
        f"[bold]{totals['published']:,}[/] messages in {meta['elapsed_s']:.1f} s "
        f"({meta['messages_per_s'] or 0:,.0f} msg/s), {meta['mode']} from {meta['start']}"
        f"{' (stopped early)' if meta['stopped_early'] else ''}"
    )
    table = Table("channel", "published", "valid", "duplicates", *DEAD_LETTER_REASONS)
    for channel, counts in sorted(result.by_channel.items()):
        dead = counts["dead_letters"]
        table.add_row(
            channel,
            *(f"{counts[k]:,}" for k in ("published", "valid", "duplicates")),
            *(f"{dead[r]:,}" for r in DEAD_LETTER_REASONS),
        )
    console.print(table)
    faults = {k: totals[k] for k in ("dropped", "late", "skewed", "offline_skipped", "wills")}
    console.print("faults: " + ", ".join(f"{k} {v:,}" for k, v in faults.items()))


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
