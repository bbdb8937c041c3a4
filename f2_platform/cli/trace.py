"""`f2 trace --device D --datapoint P --at T`: where a stored reading came from (f2_platform/tracing)."""

from __future__ import annotations

from datetime import datetime, timedelta

import click

from f2_platform.cli.params import DURATION, MOMENT


@click.command("trace")
@click.option("--device", "device_id", type=int, required=True, help="The reading's device id (registry deviceid).")
@click.option("--datapoint", "datapoint_id", type=int, required=True, help="Its datapoint id.")
@click.option("--at", "at", type=MOMENT, required=True, help="Its time (UTC, ISO 8601); the nearest reading is traced.")
@click.option("--skew", type=DURATION, default="10m", show_default=True, help="How far a device clock may run ahead.")
@click.option(
    "--horizon",
    type=DURATION,
    default="6h",
    show_default=True,
    help="How long after its time a reading may have reached Kafka (buffered devices send late).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def trace(device_id: int, datapoint_id: int, at: datetime, skew: timedelta, horizon: timedelta, as_json: bool) -> None:
    """Where a stored reading came from: its MQTT topic, raw record (partition, offset, payload with credentials
    fingerprinted), the registry and decoder versions that decoded it, and when each hop saw it.

    Exit status 1 when the reading or its raw record cannot be found (the notes say why).
    """
    from f2_platform.connections import resolve_connections
    from f2_platform.tracing.trace import trace_json, trace_reading, wiring_of

    conn = resolve_connections()
    wiring = wiring_of(conn.registry_dsn, conn.registry_schema, device_id)
    result = trace_reading(conn.kafka_config(), conn.timeseries_dsn, wiring, device_id, datapoint_id, at, skew, horizon)
    click.echo(trace_json(result) if as_json else result.as_text())
    if not result.found:
        raise SystemExit(1)
