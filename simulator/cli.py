"""`f2 simulate`: simulated F2 controllers publishing over MQTT (QoS 1); a development tool."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from f2_platform.cli.params import DURATION, MOMENT
from simulator.behaviour import EventMix
from simulator.fingerprints import CredentialKey
from simulator.timebase import LiveTime, ReplayTime

# A replay's default rate: 24 h of the sample fleet (about 16,000 messages) in well under a minute, far below
# what the pipeline takes (bench/results/latest.md), so the broker never queues much for the bridge.
REPLAY_RATE = 1000.0


@click.command()
@click.option(
    "--controllers",
    type=int,
    default=None,
    help="Register and drive N generated controllers instead of the sample fleet.",
)
@click.option(
    "--mac-prefix",
    default=None,
    help="With --controllers: the generated controllers' MACs start with these hex digits (default f2510000); "
    "a prefix of its own gives a run controllers no other run drives.",
)
@click.option(
    "--interval",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds between frames of one sensor (fractions allowed, down to milliseconds).",
)
@click.option("--count", type=int, default=None, help="Stop after publishing this many messages.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option(
    "--ledger",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append every message the broker acknowledged, with its readings, as JSON lines.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed of the value models.")
@click.option(
    "--history",
    type=DURATION,
    default=None,
    help="Replay this much past device time (e.g. 24h) as fast as --rate allows, then stop.",
)
@click.option(
    "--start",
    type=MOMENT,
    default=None,
    help="With --history: device time of the first frame (UTC, ISO 8601; default: now minus --history).",
)
@click.option(
    "--rate",
    type=float,
    default=None,
    help=f"At most this many messages per second (default: {REPLAY_RATE:.0f} with --history, else no limit).",
)
@click.option(
    "--event-activity",
    type=click.FloatRange(0.0, 1.0),
    default=EventMix.activity,
    show_default=True,
    help="Probability that a door, button, motion sensor, strike, siren or reader reports at one of its ticks "
    "(one per --interval), at its busiest hours (access in working hours, motion at night); 0: frames only.",
)
@click.option(
    "--indicator-share",
    type=click.FloatRange(0.0, 1.0),
    default=EventMix.indicator_share,
    show_default=True,
    help="Share of reader messages that are light-indicator responses rather than scans.",
)
@click.option(
    "--unknown-card-share",
    type=click.FloatRange(0.0, 1.0),
    default=EventMix.unknown_card_share,
    show_default=True,
    help="Share of scans of one-off tokens (visitors) rather than the site's cards.",
)
@click.option(
    "--cards",
    type=click.IntRange(1),
    default=EventMix.cards,
    show_default=True,
    help="The site's cards the readers scan (the same cards for the same --seed).",
)
@click.option(
    "--reconcile",
    is_flag=True,
    help="After publishing, wait until decoded_data holds exactly the ledger's readings and device_events and "
    "component_states its events; exit 1 if they do not.",
)
@click.option(
    "--reconcile-timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds --reconcile waits for the pipeline.",
)
def simulate(
    controllers: int | None,
    mac_prefix: str | None,
    interval: float,
    count: int | None,
    duration: float | None,
    ledger: Path | None,
    seed: int,
    history: timedelta | None,
    start: datetime | None,
    rate: float | None,
    event_activity: float,
    indicator_share: float,
    unknown_card_share: float,
    cards: int,
    reconcile: bool,
    reconcile_timeout: float,
) -> None:
    """Simulated F2 controllers publishing telemetry and status over MQTT (QoS 1): live, or (--history) a
    replay of past hours with device timestamps in the past."""
    import logging
    import signal
    import threading

    import psycopg

    from f2_platform.connections import resolve_connections
    from f2_platform.registry.seed import seed_fleet
    from simulator.behaviour import card_pool
    from simulator.endpoints import EventContext
    from simulator.fleet import generated_fleet, sample_fleet
    from simulator.identities import enrolled_identities
    from simulator.registry_ids import NotRegistered
    from simulator.run import run_simulation
    from simulator.settings import SimulatorSettings

    if interval < 0.001:
        raise click.BadParameter("must be at least 0.001 s", param_hint="--interval")
    time_base = _time_base(history, start, rate, duration)
    if reconcile and ledger is None:
        raise click.BadParameter("needs --ledger FILE: the readings to reconcile", param_hint="--reconcile")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    conn = resolve_connections()
    if mac_prefix is not None and not (controllers and re.fullmatch(r"[0-9a-f]{1,10}", mac_prefix)):
        raise click.BadParameter(
            "needs --controllers, and 1 to 10 lowercase hex digits (the rest of the 12 count the controllers)",
            param_hint="--mac-prefix",
        )
    if controllers:
        fleet = (
            generated_fleet(controllers)
            if mac_prefix is None
            else generated_fleet(controllers, mac_prefix, f"Sim {mac_prefix}")
        )
        with psycopg.connect(conn.registry_dsn) as db, db.transaction():
            seed_fleet(db, fleet.controllers, fleet.wiring, schema=conn.registry_schema)
    else:
        fleet = sample_fleet()
    macs = fleet.macs
    mix = EventMix(event_activity, indicator_share, unknown_card_share, cards)
    events = EventContext(mix, card_pool(seed, cards), _credential_key())
    has_readers = any(w.template == "RD-1" for w in (*fleet.wiring, *fleet.unregistered))
    if ledger is not None and has_readers and event_activity > 0 and events.key is None:
        raise click.ClickException(
            "F2_CREDENTIAL_SECRET is not set: the ledger must hold each scanned card's fingerprint, made with the "
            'bridge\'s secret (the local stack exports it: eval "$(f2 stack env)")'
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sim = SimulatorSettings()
    identities = None
    if sim.transport == "tls":
        devices_dir = sim.devices_dir or conn.state_dir / "devices"
        identities = enrolled_identities(conn, macs, devices_dir, sim.enroll_url)
    elif sim.transport != "internal":
        raise click.BadParameter(f"F2_SIMULATOR_TRANSPORT={sim.transport!r}: expected tls or internal")
    click.echo(
        f"simulating {len(macs)} controller(s) over {sim.transport}, one frame per sensor every {interval} s", err=True
    )
    if isinstance(time_base, ReplayTime):
        window = f"{_utc(time_base.start_s)} to {_utc(time_base.end_s)} UTC"
        click.echo(f"replaying device time {window} at up to {time_base.rate:.0f} messages/s", err=True)
    try:
        acked = run_simulation(
            conn,
            fleet,
            identities=identities,
            interval_s=interval,
            count=count,
            duration_s=duration,
            ledger_path=ledger,
            seed=seed,
            stop=stop,
            time_base=time_base,
            events=events,
        )
    except NotRegistered as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{acked} messages acknowledged by the broker", err=True)
    if reconcile and ledger is not None:
        _reconcile(ledger, conn.timeseries_dsn, reconcile_timeout)


def _credential_key() -> CredentialKey | None:
    """The bridge's current key (F2_CREDENTIAL_*, else the local stack's), to predict the fingerprints."""
    from f2_platform.connections import resolve_credentials

    settings = resolve_credentials()
    if settings.secret is None or not settings.secret.get_secret_value():
        return None
    return CredentialKey(settings.key_id, settings.secret.get_secret_value().encode())


def _time_base(
    history: timedelta | None, start: datetime | None, rate: float | None, duration: float | None
) -> LiveTime | ReplayTime:
    if rate is not None and rate <= 0:
        raise click.BadParameter("must be positive", param_hint="--rate")
    if history is None:
        if start is not None:
            raise click.BadParameter("replays a window: give its length with --history", param_hint="--start")
        return LiveTime(duration, rate)
    if duration is not None:
        raise click.BadParameter("a replay ends with its window (--history), not a duration", param_hint="--duration")
    now = datetime.now(UTC)
    first = start if start is not None else now - history
    if first + history > now:
        raise click.BadParameter(
            f"the window {first:%Y-%m-%d %H:%M:%S} + {history} ends in the future: device times must be past",
            param_hint="--start/--history",
        )
    return ReplayTime(first.timestamp(), (first + history).timestamp(), REPLAY_RATE if rate is None else rate)


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _reconcile(ledger: Path, dsn: str, timeout: float) -> None:
    """The ledger's readings against decoded_data and its events against device_events and component_states,
    exactly; exit 1 with what differs."""
    import time

    from simulator.reconcile import ledger_events, ledger_readings, wait_events_reconciled, wait_reconciled

    deadline = time.monotonic() + timeout
    expected, messages = ledger_readings([ledger])
    result = wait_reconciled(expected, dsn, timeout)
    if not result.ok:
        raise click.ClickException(
            f"not reconciled after {timeout:.0f} s: {result.expected} readings in {ledger}, {result.observed} in "
            f"decoded_data over their devices and time span ({result.detail})"
        )
    events = ledger_events([ledger])
    if events:
        got = wait_events_reconciled(events, dsn, max(10.0, deadline - time.monotonic()))
        if not got.ok:
            raise click.ClickException(
                f"events not reconciled after {timeout:.0f} s: {got.expected} events in {ledger}, {got.observed} in "
                f"device_events over their controllers and time span ({got.detail})"
            )
    click.echo(
        f"reconciled: the {result.expected} readings of {messages} messages in {ledger} = decoded_data, "
        f"its {len(events)} events = device_events and component_states"
    )
