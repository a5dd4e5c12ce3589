"""``citytel bench``: benchmarks (ingest, query, flood, fuzz, api-fuzz)."""

from __future__ import annotations

import os
import random
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

# The benchmarks are imported by the command that runs them: `citytel collect` and the
# other commands share this CLI and must not pay for them at start-up.
from bench.history import LARGE, SMALL
from citytel.commands.options import run
from core.urls import DatabaseUrl

_PROTOCOLS = ("5", "3.1.1")
_SCALES = {"S": SMALL, "L": LARGE}


def _admin_url() -> str:
    """The server benchmarks create their throwaway databases on."""
    from bench.database import DEFAULT_ADMIN_URL  # noqa: PLC0415

    return os.environ.get("CITYTEL_DATABASE_URL") or DEFAULT_ADMIN_URL


def _parse_protocols(text: str) -> tuple[str, ...]:
    protocols = tuple(p.strip() for p in text.split(",") if p.strip())
    wrong = [p for p in protocols if p not in _PROTOCOLS]
    if wrong or not protocols:
        raise typer.BadParameter(
            f"protocols are a comma-separated subset of {', '.join(_PROTOCOLS)}"
        )
    return protocols


MessagesOption = Annotated[int, typer.Option(min=100, help="Messages per throughput run.")]
ProtocolsOption = Annotated[str, typer.Option(help="MQTT protocols to measure, e.g. 5,3.1.1.")]
SkipNaiveOption = Annotated[bool, typer.Option(help="Skip the naive INSERT-per-message bridge.")]
NaiveMessagesOption = Annotated[int, typer.Option(min=1, help="Messages for the naive bridge.")]
LatencyOption = Annotated[float, typer.Option(min=0.5, help="Seconds of each latency run.")]
QuickOption = Annotated[bool, typer.Option(help="Short naive and latency runs (smoke test).")]
OutOption = Annotated[Path | None, typer.Option(help="JSON results file.")]
ProfileOption = Annotated[
    Path | None, typer.Option(help="py-spy the single collector into this folder (slows it).")
]
StrictOption = Annotated[bool, typer.Option(help="Exit 1 when a target is missed.")]
RepeatOption = Annotated[
    int,
    typer.Option(min=1, max=9, help="Throughput runs per subject; the median run is reported."),
]


def _progress_columns() -> tuple[ProgressColumn, ...]:
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


def ingest(
    *,
    messages: MessagesOption = 1_000_000,
    protocols: ProtocolsOption = "5,3.1.1",
    skip_naive: SkipNaiveOption = False,
    naive_messages: NaiveMessagesOption = 20_000,
    latency_seconds: LatencyOption = 10.0,
    quick: QuickOption = False,
    out: OutOption = None,
    profile_dir: ProfileOption = None,
    strict: StrictOption = False,
    repeat: RepeatOption = 1,
) -> None:
    """Throughput, CPU, memory and latency of the collector against its baselines.

    Starts a private Mosquitto and a fresh database (on the server of
    CITYTEL_DATABASE_URL, or the local default) and drops it afterwards.
    """
    from bench.ingest import IngestBench, IngestBenchOptions  # noqa: PLC0415
    from bench.report import evaluate, failed_targets, print_report, write_json  # noqa: PLC0415

    server = _admin_url()
    options = IngestBenchOptions(
        admin_url=DatabaseUrl(server),
        messages=messages,
        protocols=_parse_protocols(protocols),
        skip_naive=skip_naive,
        quick=quick,
        naive_messages=naive_messages,
        latency_s=latency_seconds,
        profile_dir=profile_dir,
        repeat=repeat,
    )
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # a log file: room for the whole table
    with Progress(*_progress_columns(), console=console, transient=False) as progress:
        tasks: dict[str, int] = {}

        def on_progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=done)

        bench = IngestBench(options, on_progress=on_progress, on_note=console.log)
        results = run(bench.run())
    for result in results["protocols"].values():
        evaluate(result)
    print_report(results, console)
    path = out or Path("bench/results") / f"ingest-{datetime.now():%Y%m%d-%H%M%S}.json"
    write_json(results, path)
    console.print(f"results written to {path}")
    missed = failed_targets(results)
    if strict and missed:
        console.print(f"[bold red]{len(missed)} target(s) missed[/]")
        raise typer.Exit(1)


def fuzz(
    *,
    inputs: Annotated[int, typer.Option(min=1, help="Hostile inputs to try.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed of the input generator.")] = 0,
    write: Annotated[bool, typer.Option(help="Also write them into a throwaway database.")] = True,
) -> None:
    """Hostile payloads and topics through the real decoder (and writer): nothing may escape.

    Exits 1 when an exception escaped or an input left no trace (no rows, no dead letter).
    """
    from bench.fuzz import FuzzOptions, decode_and_write, decode_only  # noqa: PLC0415
    from bench.fuzz_report import print_fuzz_report  # noqa: PLC0415

    server = _admin_url()
    options = FuzzOptions(
        inputs=inputs, seed=seed, admin_url=DatabaseUrl(server) if write else None
    )
    console = Console()
    with Progress(*_progress_columns(), console=console) as progress:
        task = progress.add_task("fuzzing", total=inputs)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done)

        if write:
            report = run(decode_and_write(options, on_progress))
        else:
            report = decode_only(options, on_progress)
        progress.update(task, completed=inputs)
    print_fuzz_report(report, console)
    if report.escaped or report.outcome.unaccounted:
        raise typer.Exit(1)


def flood(
    *,
    valid: Annotated[int, typer.Option(min=100, help="Valid messages from the fleet.")] = 20_000,
    factor: Annotated[
        int, typer.Option(min=1, help="Malformed messages from one device per valid one.")
    ] = 10,
    repeat: RepeatOption = 1,
    out: OutOption = None,
) -> None:
    """Valid throughput of one collector with and without a malformed flood from one device.

    Starts a private Mosquitto and a fresh database (as `bench ingest`) and drops them.
    """
    from bench.flood import FloodBench, FloodOptions, flood_summary  # noqa: PLC0415
    from bench.report import write_json  # noqa: PLC0415

    server = _admin_url()
    options = FloodOptions(admin_url=DatabaseUrl(server), valid=valid, factor=factor, repeat=repeat)
    console = Console()
    results = run(FloodBench(options, on_note=console.log).run())
    for line in flood_summary(results):
        console.print(line)
    path = out or Path("bench/results") / f"flood-{datetime.now():%Y%m%d-%H%M%S}.json"
    write_json(results, path)
    console.print(f"results written to {path}")


def api_fuzz(
    *,
    examples: Annotated[
        int, typer.Option(min=1, help="Cases per operation and run (valid, invalid, seeded).")
    ] = 200,
    seed: Annotated[int | None, typer.Option(help="Hypothesis seed; random when unset.")] = None,
) -> None:
    """Schemathesis over the API's OpenAPI schema, in process, on a throwaway database.

    Each case is sent without a key and with a viewer, operator and admin key. Exits 1
    when an answer is a 5xx or breaks the key rules (401 without a key, 403 below the
    operation's role).
    """
    from bench.api_fuzz import print_api_fuzz_report  # noqa: PLC0415 - needs the dev extra

    server = _admin_url()
    console = Console()
    used_seed = seed if seed is not None else random.randrange(2**32)
    console.print(f"seed {used_seed} (--seed {used_seed} repeats this run)")
    report = run(_api_fuzz(DatabaseUrl(server), examples, used_seed, console))
    print_api_fuzz_report(report, console)
    if report.server_errors or report.findings:
        raise typer.Exit(1)


async def _api_fuzz(admin: DatabaseUrl, examples: int, seed: int, console: Console) -> Any:
    import asyncpg  # noqa: PLC0415

    from api.keys import Role, create_key  # noqa: PLC0415
    from api.main import create_app  # noqa: PLC0415
    from bench.api_fuzz import ApiFuzzOptions, fuzz_app, seed_database  # noqa: PLC0415
    from core.settings import ApiSettings  # noqa: PLC0415
    from schemas.scratch import scratch_database  # noqa: PLC0415

    async with scratch_database(admin, "citytel_api_fuzz") as url:
        conn = await asyncpg.connect(str(url), timeout=10)
        try:
            fixed = await seed_database(conn)
            keys = {str(role): (await create_key(conn, role, f"fuzz-{role}"))[1] for role in Role}
        finally:
            await conn.close()
        app = create_app(ApiSettings(database_url=str(url)))
        options = ApiFuzzOptions(examples=examples, seed=seed, fixed=fixed)
        async with app.router.lifespan_context(app):
            return await fuzz_app(app, keys, options, lambda op: console.print(f"fuzzing {op}"))


def query(
    *,
    scales: Annotated[str, typer.Option(help="Scales to measure: S, L or S,L.")] = "S,L",
    days: Annotated[int, typer.Option(min=2, max=90, help="Days of history.")] = 30,
    repeat: Annotated[int, typer.Option(min=3, help="Timed requests per API request.")] = 30,
    storage: Annotated[
        str, typer.Option(help="auto (TimescaleDB when available), postgres or timescale.")
    ] = "auto",
    out: OutOption = None,
    strict: StrictOption = False,
) -> None:
    """Indicator and aggregate requests through the API at city scales S and L (ten times
    the devices), and the same questions from rollups against raw rows, side by side.

    Loads each history into a throwaway database on the server of CITYTEL_DATABASE_URL
    (or the local default) and drops it afterwards. L writes about 114 million rows
    (some 20 GB) and takes half an hour or more on a small machine.
    """
    from bench.query import QueryBench, QueryBenchOptions  # noqa: PLC0415
    from bench.query_report import print_query_report, write_query_json  # noqa: PLC0415

    chosen = tuple(s.strip().upper() for s in scales.split(",") if s.strip())
    if not chosen or set(chosen) - set(_SCALES):
        raise typer.BadParameter("scales are S, L or S,L")
    if storage not in ("auto", "postgres", "timescale"):
        raise typer.BadParameter("storage is auto, postgres or timescale")
    server = _admin_url()
    options = QueryBenchOptions(
        admin_url=DatabaseUrl(server),
        scales=tuple(_SCALES[s] for s in chosen),
        days=days,
        repeat=repeat,
        storage=storage,  # type: ignore[arg-type]
    )
    console = Console()
    with Progress(*_progress_columns(), console=console, transient=False) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=done, total=total)

        bench = QueryBench(options, on_progress=on_progress, on_note=console.log)
        results = run(bench.run())
    missed = print_query_report(results, console)
    path = out or Path("bench/results") / f"query-{datetime.now():%Y%m%d-%H%M%S}.json"
    write_query_json(results, path)
    console.print(f"results written to {path}")
    if strict and missed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Benchmarks: ingest, fuzz, flood, api-fuzz.", no_args_is_help=True)
    group.command("ingest")(ingest)
    group.command("fuzz")(fuzz)
    group.command("query")(query)
    group.command("flood")(flood)
    group.command("api-fuzz")(api_fuzz)
    app.add_typer(group, name="bench")
