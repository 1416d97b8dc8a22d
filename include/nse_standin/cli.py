"""Command line: write NSE's files for a range of days, and serve them as NSE's hosts do.

    python -m include.nse_standin generate --from 2024-07-01 --to 2024-07-31 --out /tmp/nse
    python -m include.nse_standin serve --root /tmp/nse --port 8765

Each prints one JSON line: `generate` a summary of what it wrote, `serve` the URL it listens on.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import threading
import time
from pathlib import Path

import click

from include.nse_standin.generate import WRITERS, generate
from include.nse_standin.server import StandIn


def _date(_ctx, _param, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2024-07-05") from None


def _dates(ctx, param, values: tuple[str, ...]) -> tuple[dt.date, ...]:
    return tuple(_date(ctx, param, value) for value in values)


@click.group()
def cli() -> None:
    """NSE's files, generated and served locally in NSE's formats and URL layout."""


@cli.command(name="generate")
@click.option("--from", "start", required=True, callback=_date, help="First trade date.")
@click.option("--to", "end", required=True, callback=_date, help="Last trade date.")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output root."
)
@click.option("--seed", default=7, show_default=True, help="Same seed, same bytes.")
@click.option("--symbols", default=2400, show_default=True, help="Listed securities.")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    type=click.Choice(list(WRITERS)),
    help="Dataset to write (repeatable; default all).",
)
@click.option("--holiday", "holidays", multiple=True, callback=_dates, help="A closed weekday.")
@click.option(
    "--session",
    "weekend_sessions",
    multiple=True,
    callback=_dates,
    help="A weekend day NSE opened (a Budget Saturday).",
)
def generate_command(start, end, out, seed, symbols, datasets, holidays, weekend_sessions) -> None:
    """Write NSE files for a range of trade dates, laid out like NSE's archive host."""
    started = time.monotonic()
    try:
        report = generate(
            start,
            end,
            out,
            seed=seed,
            symbols=symbols,
            datasets=datasets or None,
            holidays=holidays,
            weekend_sessions=weekend_sessions,
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    summary = {"out": str(out), **report.summary()}
    summary["seconds"] = round(time.monotonic() - started, 2)
    click.echo(json.dumps(summary))


@cli.command(name="serve")
@click.option(
    "--root",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory in NSE's URL layout (see `generate`).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, help="Port to listen on.")
def serve_command(root: Path, host: str, port: int) -> None:
    """Serve ROOT like NSE's archive and API hosts until interrupted."""
    standin = StandIn(root, host, port).start()
    click.echo(json.dumps({"url": standin.url, "root": str(standin.root)}))
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()


def main() -> None:
    cli(prog_name="python -m include.nse_standin")
