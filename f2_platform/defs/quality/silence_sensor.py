"""Alerts when devices fall silent: every few minutes the freshness of every periodic device is evaluated
now; devices silent now and not at the previous evaluation are alerted once (logged and posted). The cursor
holds the silent devices, so a device alerts again only after it reported in between."""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
import json
from datetime import timedelta

import dagster as dg

from f2_platform.defs.resources import DataQualityResource, RegistryResource, TimescaleResource
from f2_platform.environment import default_status
from f2_platform.quality import alerts
from f2_platform.quality.evaluation import WindowEvaluation
from f2_platform.quality.fleet import load_fleet
from f2_platform.quality.window import CheckWindow


def parse_cursor(cursor: str | None) -> dict[str, str]:
    """device id -> last reading (ISO 8601) of the devices silent at the previous evaluation."""
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
        return {str(k): str(v) for k, v in dict(data.get("silent") or {}).items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def plan(previous: dict[str, str], silent_now: dict[str, str]) -> tuple[list[str], list[str]]:
    """Pure: (devices newly silent, devices that reported again)."""
    return sorted(set(silent_now) - set(previous), key=int), sorted(set(previous) - set(silent_now), key=int)


@dg.sensor(
    name="device_silence_sensor",
    minimum_interval_seconds=300,
    description="Alerts (log and webhook) when a periodic device stops reporting for more than K intervals.",
    default_status=default_status(dg.DefaultSensorStatus),
)
def device_silence_sensor(
    context: dg.SensorEvaluationContext,
    timescale: TimescaleResource,
    registry: RegistryResource,
    data_quality: DataQualityResource,
) -> dg.SensorResult:
    settings = data_quality.quality_settings()
    fleet = load_fleet(registry.fetch_all)
    window = CheckWindow.recent(timedelta(seconds=settings.recent_window_s))
    outcome = WindowEvaluation(timescale, fleet, window, settings).freshness()
    names = fleet.device_names()
    silent = {str(int(r.device_id)): r for r in outcome.failures.itertuples()}
    silent_now = {device: row.last_seen.isoformat() for device, row in silent.items()}
    newly, recovered = plan(parse_cursor(context.cursor), silent_now)
    if newly:
        devices = [
            {
                "device_id": int(d),
                "device_name": names.get(int(d)),
                "last_seen": silent_now[d],
                "silent_for_s": round(float(silent[d].silent_for_s), 1),
            }
            for d in newly
        ]
        context.log.warning(f"{len(newly)} device(s) fell silent: {', '.join(newly)}")
        alerts.send(alerts.silent_devices_alert(devices, settings.silent_after_intervals))
    for device in recovered:
        context.log.info(f"device {device} ({names.get(int(device))}) reports again")
    return dg.SensorResult(
        run_requests=[],
        cursor=json.dumps({"silent": silent_now}, sort_keys=True),
        skip_reason=None if newly else f"{len(silent_now)} silent device(s), none newly silent",
    )
