"""`f2 deadletters list` and `f2 deadletters replay`: what was dead-lettered, by reason, controller and day,
and storing what the registry now decodes (f2_platform/deadletters). Payloads are shown with credentials
fingerprinted or redacted, never in clear."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from f2_platform.cli.params import DURATION, MOMENT
from f2_platform.errors import F2Error
from streaming.errors import REASONS
from streaming.mqtt.topic import parse_mac

if TYPE_CHECKING:
    from f2_platform.deadletters.replay import ReplayFilter

F = TypeVar("F", bound=Callable[..., Any])

_WINDOW_HELP = "Dead letters written since this long ago (e.g. 24h, 7d); --start overrides it."


def _window(since: timedelta, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime | None]:
    begin = start if start is not None else datetime.now(UTC) - since
    if end is not None and end <= begin:
        raise F2Error(f"--end {end.isoformat()} is not after the window's start {begin.isoformat()}")
    return begin, end


def _filter(
    since: timedelta,
    start: datetime | None,
    end: datetime | None,
    reasons: tuple[str, ...],
    controllers: tuple[str, ...],
) -> ReplayFilter:
    from f2_platform.deadletters.replay import ReplayFilter

    begin, finish = _window(since, start, end)
    try:
        macs = frozenset(parse_mac(c) for c in controllers)
    except ValueError as exc:
        raise F2Error(f"--controller {exc}") from None
    return ReplayFilter(begin, finish, frozenset(reasons), macs)


def _options(command: F) -> F:
    for option in reversed(
        [
            click.option("--since", type=DURATION, default="24h", show_default=True, help=_WINDOW_HELP),
            click.option("--start", type=MOMENT, default=None, help="Window start (UTC, ISO 8601)."),
            click.option("--end", type=MOMENT, default=None, help="Window end, exclusive (default: now)."),
            click.option(
                "--reason",
                "reasons",
                multiple=True,
                type=click.Choice(REASONS),
                help="Only dead letters of this reason (repeatable).",
            ),
            click.option(
                "--controller", "controllers", multiple=True, help="Only this controller's (MAC; repeatable)."
            ),
            click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text."),
        ]
    ):
        command = option(command)
    return command


@click.group("deadletters")
def deadletters() -> None:
    """Dead letters (f2.deadletter): list them, replay those the registry now decodes."""


@deadletters.command("list")
@_options
@click.option("--samples", type=int, default=2, show_default=True, help="Sample dead letters per group.")
def list_command(
    since: timedelta,
    start: datetime | None,
    end: datetime | None,
    reasons: tuple[str, ...],
    controllers: tuple[str, ...],
    as_json: bool,
    samples: int,
) -> None:
    """Dead letters of a window by day, reason and controller, with their replay status and samples."""
    from dataclasses import asdict

    from f2_platform.connections import resolve_connections
    from f2_platform.deadletters.replay import read_letters, replay_status
    from f2_platform.deadletters.summary import as_table, summarise

    window = _filter(since, start, end, reasons, controllers)
    conn = resolve_connections()
    letters = read_letters(conn.kafka_config(), window)
    groups = summarise(letters, replay_status(conn.timeseries_dsn, letters), samples)
    if as_json:
        click.echo(json.dumps([asdict(g) for g in groups], indent=2, default=str))
        return
    end_text = window.end.isoformat() if window.end else "now"
    click.echo(f"{len(letters)} dead letter(s) from {window.start.isoformat()} to {end_text}")
    if not groups:
        return
    click.echo(as_table(groups))
    for g in groups:
        for s in g.samples:
            click.echo(
                f"  sample {g.reason} {g.controller}: dead letter {s.deadletter_partition}:{s.deadletter_offset}"
                f" of {s.source}, MQTT {s.mqtt_topic}, payload sha256 {s.payload_digest}: {s.payload}"
            )
            click.echo(f"    {s.detail}")


@deadletters.command("replay")
@_options
@click.option("--dry-run", is_flag=True, help="Decode and report, store nothing.")
def replay_command(
    since: timedelta,
    start: datetime | None,
    end: datetime | None,
    reasons: tuple[str, ...],
    controllers: tuple[str, ...],
    as_json: bool,
    dry_run: bool,
) -> None:
    """Decode a window's dead letters again with the current registry and store what now decodes.

    Readings go to decoded_data and events to device_events through the sink's write path; each replayed dead
    letter is recorded in deadletter_replays and never replayed again. What still fails is listed with the
    reason it fails for now.
    """
    from f2_platform.connections import resolve_connections
    from f2_platform.deadletters.replay import Replayer, new_run_id
    from streaming.decoding.topology_store import RegistryStore
    from streaming.settings import ProcessorSettings

    window = _filter(since, start, end, reasons, controllers)
    conn = resolve_connections()
    store = RegistryStore(conn.registry_dsn, connect_timeout=10, schema=conn.registry_schema)
    try:
        replayer = Replayer(
            conn.kafka_config(), conn.timeseries_dsn, store.load, ProcessorSettings().max_payload_bytes, new_run_id()
        )
        report = replayer.run(window, dry_run=dry_run)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
        return
    verb = "would replay" if dry_run else "replayed"
    click.echo(
        f"{report.read} dead letter(s) read, {report.matched} matched; {verb} {report.replayed} "
        f"({report.readings} reading(s), {report.events} event(s)); already replayed {report.already_replayed}"
    )
    if report.not_replayable:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(report.not_replayable.items()))
        click.echo(f"not replayable (the sink's dead letters: decoded records the database refused): {shown}")
    click.echo(f"registry version(s): {sorted(report.registry_versions)}; decoder {report.decoder_version}")
    if report.still_failing:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(report.still_failing.items()))
        click.echo(f"still failing: {shown}")
        for f in report.failures:
            click.echo(
                f"  dead letter {f.deadletter} ({f.source}, controller {f.controller}): was {f.original_reason}, "
                f"now {f.reason}: {f.detail}"
            )
