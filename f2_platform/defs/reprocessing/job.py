"""The reprocessing job: re-decode a window of raw records for some devices after a registry fix."""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
from datetime import timedelta

import dagster as dg

from f2_platform.defs.asset_keys import DECODED_DATA
from f2_platform.defs.reprocessing.raw_reader import read_raw_since
from f2_platform.defs.reprocessing.redecode import Redecoder
from f2_platform.defs.reprocessing.upsert import upsert_readings
from f2_platform.defs.reprocessing.window import OP_NAME, ReprocessConfig, window_from_config
from f2_platform.defs.resources import KafkaAdminResource, RegistryResource, TimescaleResource
from streaming.decoding.topology import Reading
from streaming.settings import ProcessorSettings

_WIRED_DEVICES = 'SELECT DISTINCT deviceid FROM "VtDevice".pins WHERE deviceid = ANY(%(ids)s)'


@dg.op(
    name=OP_NAME,
    description="Reads the raw records of the window from f2.raw (located by timestamp), decodes them with "
    "the current registry, and upserts the readings of the chosen devices into decoded_data.",
)
def reprocess_raw_window(
    context: dg.OpExecutionContext,
    config: ReprocessConfig,
    timescale: TimescaleResource,
    registry: RegistryResource,
    kafka_admin: KafkaAdminResource,
) -> dg.Output[dict[str, object]]:
    try:
        window = window_from_config(config.start, config.end, config.device_ids)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from None
    wired = {int(r["deviceid"]) for r in registry.fetch_all(_WIRED_DEVICES, {"ids": sorted(window.device_ids)})}
    unknown = sorted(window.device_ids - wired)
    if unknown:
        raise dg.Failure(f"device ids {unknown} are not wired devices in the registry (pins.deviceid)")

    store = registry.store()
    redecoder = Redecoder(window, lambda mac: store.load(mac)[1], ProcessorSettings().max_payload_bytes)
    readings_total = changed = 0
    pending: list[Reading] = []
    try:
        with timescale.connect() as conn:
            for batch in read_raw_since(kafka_admin, window.start - timedelta(minutes=config.clock_skew_minutes)):
                for record in batch:
                    pending.extend(redecoder.readings(record))
                if len(pending) >= 5000:
                    changed += upsert_readings(conn, pending)
                    readings_total += len(pending)
                    pending = []
            changed += upsert_readings(conn, pending)
            readings_total += len(pending)
    finally:
        store.close()

    summary: dict[str, object] = {
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
        "device_ids": sorted(window.device_ids),
        "raw_records_read": redecoder.records,
        "records_in_scope": redecoder.in_scope,
        "readings_written": readings_total,
        "rows_changed": changed,
        "undecodable_by_reason": dict(sorted(redecoder.failures.items())),
        "hourly_partitions": window.hourly_keys(),
        "daily_partitions": window.daily_keys(),
    }
    context.log.info(
        f"re-decoded {redecoder.in_scope} record(s) of {redecoder.records} read: "
        f"{readings_total} reading(s), "
        f"{changed} changed"
    )
    context.log_event(
        dg.AssetObservation(
            asset_key=DECODED_DATA,
            metadata={
                "reprocessed_window": f"{window.start.isoformat()} .. {window.end.isoformat()}",
                "reprocessed_devices": dg.MetadataValue.json(sorted(window.device_ids)),
                "rows_changed": changed,
            },
        )
    )
    return dg.Output(
        summary,
        metadata={
            "raw_records_read": redecoder.records,
            "records_in_scope": redecoder.in_scope,
            "readings_written": readings_total,
            "rows_changed": changed,
            "undecodable_by_reason": dg.MetadataValue.json(dict(redecoder.failures)),
            "affected_hourly_partitions": len(summary["hourly_partitions"]),  # type: ignore[arg-type]
            "affected_daily_partitions": len(summary["daily_partitions"]),  # type: ignore[arg-type]
        },
    )


@dg.job(
    name="reprocess_job",
    description="Re-decode raw records of a time window and a device set after a registry fix; on success "
    "the reprocess_followup_sensor requests the affected aggregate partitions.",
    tags={"f2/concern": "reprocessing"},
    executor_def=dg.in_process_executor,
)
def reprocess_job() -> None:
    reprocess_raw_window()
