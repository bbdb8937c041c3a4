"""`f2 trace`: where a stored reading (`--device D --datapoint P --at T`) or a stored event (`--controller MAC
--component C --at T`) came from (f2_platform/tracing)."""

from __future__ import annotations

from datetime import datetime, timedelta

import click

from f2_platform.cli.params import DURATION, MOMENT
from streaming.mqtt.topic import parse_mac

_USAGE = (
    "say what to trace: a reading with --device and --datapoint, or an event with --controller and --component"
    " (e.g. --controller aabbccddee01 --component door-sensor-1)"
)


@click.command("trace")
@click.option("--device", "device_id", type=int, help="A reading's device id (registry deviceid).")
@click.option("--datapoint", "datapoint_id", type=int, help="The reading's datapoint id.")
@click.option("--controller", help="An event's controller (MAC, e.g. aabbccddee01).")
@click.option("--component", help="The event's component: door-sensor-1, exit-button-2, reader-1, strike-1, ...")
@click.option(
    "--connector", type=click.IntRange(1, 4), help="The event's connector (J1..J4), if the name is not enough."
)
@click.option("--at", "at", type=MOMENT, required=True, help="Its time (UTC, ISO 8601); the nearest one is traced.")
@click.option("--skew", type=DURATION, default="10m", show_default=True, help="How far a device clock may run ahead.")
@click.option(
    "--horizon",
    type=DURATION,
    default="6h",
    show_default=True,
    help="How long after its time a message may have reached Kafka (buffered devices send late).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def trace(
    device_id: int | None,
    datapoint_id: int | None,
    controller: str | None,
    component: str | None,
    connector: int | None,
    at: datetime,
    skew: timedelta,
    horizon: timedelta,
    as_json: bool,
) -> None:
    """Where a stored reading or event came from: its MQTT topic, raw record (partition, offset, payload with
    credentials fingerprinted), the registry and decoder versions that decoded it, and when each hop saw it.

    Exit status 1 when the reading or event or its raw record cannot be found (the notes say why).
    """
    from f2_platform.connections import resolve_connections
    from f2_platform.tracing.trace import Trace, trace_event, trace_json, trace_reading, wiring_of

    reading = device_id is not None or datapoint_id is not None
    event = controller is not None or component is not None or connector is not None
    if reading == event:
        raise click.UsageError(_USAGE if not reading else f"trace a reading or an event, not both: {_USAGE}")
    conn = resolve_connections()
    result: Trace
    if reading:
        if device_id is None or datapoint_id is None:
            raise click.UsageError("a reading is traced by --device and --datapoint together")
        wiring = wiring_of(conn.registry_dsn, conn.registry_schema, device_id)
        result = trace_reading(
            conn.kafka_config(), conn.timeseries_dsn, wiring, device_id, datapoint_id, at, skew, horizon
        )
    else:
        if controller is None or component is None:
            raise click.UsageError("an event is traced by --controller and --component together (--connector optional)")
        try:
            mac = parse_mac(controller)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--controller") from None
        result = trace_event(conn.kafka_config(), conn.timeseries_dsn, mac, component, at, connector, skew, horizon)
    click.echo(trace_json(result) if as_json else result.as_text())
    if not result.found:
        raise SystemExit(1)
