"""``citytel demo``: the whole pipeline on an embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from citytel.commands.options import ConfigOption, run, settings_for
from core.settings import CommonSettings


def demo(
    config: ConfigOption = None,
    poles: Annotated[int, typer.Option(min=0, help="Smart poles to simulate.")] = 300,
    signals: Annotated[int, typer.Option(min=0, help="Signal controllers to simulate.")] = 60,
    energy: Annotated[int, typer.Option(min=0, help="Energy nodes to simulate.")] = 12,
    interval_s: Annotated[float, typer.Option(min=1, help="Reporting interval (s).")] = 5.0,
    api_port: Annotated[int, typer.Option(help="API port (a free one if taken).")] = 8000,
    data_dir: Annotated[Path, typer.Option(help="Where private servers keep data.")] = Path(
        "var/demo"
    ),
) -> None:
    """Run database, broker, collector, API and a simulated Jinan fleet; Ctrl-C stops all.

    Uses CITYTEL_DATABASE_URL if set, else PostgreSQL on localhost:5432, else an embedded
    PostgreSQL; CITYTEL_MQTT_URL if set, else a private Mosquitto, else an embedded broker.
    """
    from citytel.demo import DemoOptions, run_demo  # noqa: PLC0415 - heavy imports

    settings = settings_for(CommonSettings, config, demo=True)
    run(
        run_demo(
            DemoOptions(
                poles=poles,
                signals=signals,
                energy=energy,
                interval_s=interval_s,
                api_port=api_port,
                data_dir=data_dir,
                database_url=settings.database_url,
                mqtt_url=settings.mqtt_url,
            )
        )
    )


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
