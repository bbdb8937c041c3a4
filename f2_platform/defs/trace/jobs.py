"""`trace_reading_job` and `trace_event_job`: where a stored reading or event came from, as run metadata (the
same as `f2 trace`); and the retention of sink_batches."""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
import dagster as dg
from pydantic import Field

from f2_platform.defs.reprocessing.window import parse_instant
from f2_platform.defs.resources import KafkaAdminResource, RegistryResource, TimescaleResource
from f2_platform.environment import default_status
from f2_platform.tracing.retention import DROP_SQL, KEEP
from f2_platform.tracing.trace import Trace, trace_event, trace_reading, wiring_of
from streaming.mqtt.topic import parse_mac


class TraceConfig(dg.Config):
    device_id: int = Field(description="The reading's device id (registry deviceid).")
    datapoint_id: int = Field(description="Its datapoint id.")
    at: str = Field(description="Its time, RFC 3339 (the nearest stored reading is traced).")


@dg.op(name="trace_reading", description="Traces a stored reading back to its raw record (f2 trace).")
def trace_reading_op(
    context: dg.OpExecutionContext,
    config: TraceConfig,
    timescale: TimescaleResource,
    registry: RegistryResource,
    kafka_admin: KafkaAdminResource,
) -> dg.Output[dict[str, object]]:
    try:
        at = parse_instant(config.at, "at")
    except ValueError as exc:
        raise dg.Failure(str(exc)) from None
    wiring = wiring_of(registry.resolved_dsn(), registry.resolved_schema(), config.device_id)
    trace = trace_reading(
        kafka_admin.client_config(), timescale.resolved_dsn(), wiring, config.device_id, config.datapoint_id, at
    )
    return _output(context, trace)


def _output(context: dg.OpExecutionContext, trace: Trace) -> dg.Output[dict[str, object]]:
    raw = trace.raw or {}
    metadata: dict[str, dg.RawMetadataValue] = {
        "trace": dg.MetadataValue.md(f"```\n{trace.as_text()}\n```"),
        "registry_version": str(trace.registry_version),
        "decoder_version": str(trace.decoder_version),
    }
    for name in ("partition", "offset", "mqtt_topic", "received_at"):
        if raw.get(name) is not None:
            metadata[f"raw_{name}"] = str(raw[name])
    context.log.info(trace.as_text())
    return dg.Output(trace.as_dict(), metadata=metadata)


@dg.job(
    name="trace_reading_job",
    description="Where a stored reading came from: MQTT topic, raw record, registry and decoder versions, hops.",
    tags={"f2/concern": "trace"},
    executor_def=dg.in_process_executor,
)
def trace_reading_job() -> None:
    trace_reading_op()


class EventTraceConfig(dg.Config):
    controller: str = Field(description="The event's controller (MAC, 12 hex digits).")
    component: str = Field(description="Its component: door-sensor-1, exit-button-2, reader-1, strike-1, ...")
    connector: int | None = Field(default=None, description="Its connector (1..4), if the name is not enough.")
    at: str = Field(description="Its time, RFC 3339 (the nearest stored event is traced).")


@dg.op(name="trace_event", description="Traces a stored event back to its raw record (f2 trace --controller).")
def trace_event_op(
    context: dg.OpExecutionContext,
    config: EventTraceConfig,
    timescale: TimescaleResource,
    kafka_admin: KafkaAdminResource,
) -> dg.Output[dict[str, object]]:
    try:
        at = parse_instant(config.at, "at")
        mac = parse_mac(config.controller)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from None
    trace = trace_event(
        kafka_admin.client_config(), timescale.resolved_dsn(), mac, config.component, at, config.connector
    )
    return _output(context, trace)


@dg.job(
    name="trace_event_job",
    description="Where a stored event came from: MQTT topic, raw record, registry and decoder versions, hops.",
    tags={"f2/concern": "trace"},
    executor_def=dg.in_process_executor,
)
def trace_event_job() -> None:
    trace_event_op()


@dg.op(name="drop_old_sink_batches", description=f"Drops sink_batches chunks older than {KEEP.days} days.")
def drop_old_sink_batches(context: dg.OpExecutionContext, timescale: TimescaleResource) -> int:
    row = timescale.fetch_one(DROP_SQL, (KEEP,))
    dropped = int(row["count"]) if row else 0
    context.log.info(f"dropped {dropped} sink_batches chunk(s) older than {KEEP.days} days")
    return dropped


@dg.job(
    name="sink_batches_retention_job",
    description="Keeps sink_batches (the trace's record of sink transactions) as long as f2.decoded keeps records.",
    tags={"f2/concern": "trace"},
    executor_def=dg.in_process_executor,
)
def sink_batches_retention_job() -> None:
    drop_old_sink_batches()


sink_batches_retention_schedule = dg.ScheduleDefinition(
    name="sink_batches_retention_schedule",
    job=sink_batches_retention_job,
    cron_schedule="40 2 * * *",
    default_status=default_status(dg.DefaultScheduleStatus),
)
