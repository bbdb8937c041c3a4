"""`f2 simulate`: simulated F2 controllers publishing over MQTT (QoS 1); a development tool."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--controllers",
    type=int,
    default=None,
    help="Register and drive N generated controllers instead of the sample fleet.",
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
def simulate(
    controllers: int | None, interval: float, count: int | None, duration: float | None, ledger: Path | None, seed: int
) -> None:
    """Simulated F2 controllers publishing telemetry and status over MQTT (QoS 1)."""
    import logging
    import signal
    import threading

    import psycopg

    from f2_platform.connections import resolve_connections
    from f2_platform.registry.seed import seed_fleet
    from simulator.fleet import generated_fleet, sample_fleet
    from simulator.identities import enrolled_identities
    from simulator.registry_ids import NotRegistered
    from simulator.run import run_simulation
    from simulator.settings import SimulatorSettings

    if interval < 0.001:
        raise click.BadParameter("must be at least 0.001 s", param_hint="--interval")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    conn = resolve_connections()
    if controllers:
        fleet = generated_fleet(controllers)
        with psycopg.connect(conn.registry_dsn) as db, db.transaction():
            seed_fleet(db, fleet.controllers, fleet.wiring)
    else:
        fleet = sample_fleet()
    macs = fleet.macs
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
        )
    except NotRegistered as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{acked} messages acknowledged by the broker", err=True)
