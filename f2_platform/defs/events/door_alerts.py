"""The door_held_open alert, posted once per open run of a door.

Posting is claimed in event_alerts (timeseries migration 0007), keyed by the door and its run's start, in the
transaction that posts: a run already there is never posted again (a re-run of the partition, the next
partition the same run reaches into, the daily level after the hourly one), and two checks running at once
cannot both claim it. When a webhook is configured but the post fails, the claim is rolled back, so the next
check run tries again; without a webhook the alert is only logged and the run counts as alerted.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg

from f2_platform.defs.resources import TimescaleResource
from f2_platform.quality import alerts
from f2_platform.quality.settings import AlertSettings

ALERT = alerts.KIND_DOOR_HELD_OPEN

CLAIM = """
INSERT INTO event_alerts (alert, controller_mac, connector, component, run_start, details)
SELECT %(alert)s, d.controller_mac, d.connector, d.component, d.run_start, d.details
FROM jsonb_to_recordset(%(runs)s::jsonb)
     AS d(controller_mac text, connector smallint, component text, run_start timestamptz, details jsonb)
ON CONFLICT DO NOTHING
RETURNING controller_mac, connector, component, run_start
"""


def _key(run: dict[str, Any]) -> tuple[str, int, str, datetime]:
    return (str(run["controller_mac"]), int(run["connector"]), str(run["component"]), _moment(run["run_start"]))


def alert_new_runs(
    timescale: TimescaleResource,
    runs: list[dict[str, Any]],
    threshold_s: int,
    window: str,
    settings: AlertSettings | None = None,
) -> list[dict[str, Any]]:
    """Posts one alert listing the runs (JSON-ready: controller_mac, connector, component, run_start in ISO 8601,
    ...) not alerted before; returns those runs (empty: nothing posted)."""
    if not runs:
        return []
    settings = settings or AlertSettings()
    payload = json.dumps([{**_identity(r), "details": r} for r in runs], default=str)
    with timescale.connect() as conn, conn.transaction():
        claimed = conn.execute(CLAIM, {"alert": ALERT, "runs": payload}).fetchall()
        keys = {(str(m), int(c), str(p), _moment(s)) for m, c, p, s in claimed}
        new = [r for r in runs if _key(r) in keys]
        if not new:
            return []
        delivery = alerts.send(alerts.door_held_open_alert(new, threshold_s, window), settings)
        if settings.webhook_url and not delivery.posted:
            # Not delivered: unclaimed again, the next check run posts it.
            new = []
            raise psycopg.Rollback()
    return new


def _identity(run: dict[str, Any]) -> dict[str, Any]:
    return {k: run[k] for k in ("controller_mac", "connector", "component", "run_start")}


def _moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
