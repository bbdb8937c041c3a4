"""`f2 report dq --date D`: the data-quality report of a day, as the daily schedule writes it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click


@click.group()
def report() -> None:
    """Reports on the platform's data."""


@report.command("dq")
@click.option(
    "--date",
    "day",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The UTC day to report on (YYYY-MM-DD).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the HTML page and its JSON sidecar (default: F2_QUALITY_REPORT_DIR, or "
    "<F2_STATE_DIR>/reports/data-quality).",
)
@click.option(
    "--controller",
    "controllers",
    multiple=True,
    metavar="MAC",
    help="Limit the report to the devices wired to this controller (repeatable).",
)
@click.option("--no-dead-letters", is_flag=True, help="Do not read the dead-letter topic (Kafka unreachable).")
def dq(day: datetime, out_dir: Path | None, controllers: tuple[str, ...], no_dead_letters: bool) -> None:
    """Write the data-quality report of a day: an HTML page that reads offline, and a JSON sidecar."""
    from f2_platform.defs.resources import KafkaAdminResource, RegistryResource, TimescaleResource
    from f2_platform.quality.report import generate_daily_report

    generated = generate_daily_report(
        day.date(),
        TimescaleResource(),
        RegistryResource(),
        None if no_dead_letters else KafkaAdminResource(),
        out_dir=out_dir,
        controllers=list(controllers) or None,
    )
    s = generated.report["summary"]
    click.echo(f"html: {generated.files.html}")
    click.echo(f"json: {generated.files.json}")
    click.echo(
        f"{s['devices']} periodic devices, {s['readings']} readings; silent {s['silent_devices']}, "
        f"out of range {s['out_of_range_readings']}, from the future {s['future_readings']}, gaps {s['gaps']}, "
        f"stuck {s['stuck_series']}, incomplete hours {s['low_completeness_hours']}, "
        f"dead letters {s['dead_letters']}"
    )
    if s["failed_checks"]:
        click.echo(f"failed checks: {', '.join(s['failed_checks'])}")
    error = generated.report["dead_letters"]["error"]
    if error:
        click.secho(f"dead letters not counted: {error}", fg="yellow", err=True)
