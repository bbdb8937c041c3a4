"""`dbt build` of the seeded day against the real database: models and dbt tests pass, and the marts hold
the numbers computed here from the seeded rows."""

from __future__ import annotations

import json
import os
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg
import pytest

from f2_platform.defs.analytics.assets import dbt_vars
from f2_platform.defs.analytics.project import DBT_PROJECT_DIR, dbt_executable, profile_environment
from tests.quality import seed as s

pytestmark = pytest.mark.integration


def test_dbt_build_passes(
    aggregated: dict[str, Any], seeded: s.SeededDay, migrated, quality_env, tmp_path: Path
) -> None:
    env = {**os.environ, **profile_environment(migrated.timeseries_dsn), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    assert env["F2_DBT_SCHEMA"] == "f2_analytics_test"
    target = tmp_path / "target"
    result = subprocess.run(
        [
            dbt_executable(),
            "build",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(target),
            "--log-path",
            str(tmp_path / "logs"),
            "--vars",
            dbt_vars(seeded.start, seeded.end),
        ],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    results = json.loads((target / "run_results.json").read_text())["results"]
    statuses = {r["unique_id"]: r["status"] for r in results}
    assert all(status in ("success", "pass") for status in statuses.values()), statuses
    assert sum(1 for u in statuses if u.startswith("test.")) >= 20
    assert {u.split(".")[-1] for u in statuses if u.startswith("model.")} == {
        "stg_readings",
        "stg_readings_hourly",
        "stg_readings_daily",
        "stg_devices",
        "stg_datapoints",
        "device_daily_summary",
        "fleet_health_daily",
        # Events (the seeded day has none here; tests/quality/test_events.py checks these marts' numbers).
        "stg_device_events",
        "stg_component_states",
        "stg_controller_presence",
        "access_daily",
        "access_credentials_daily",
        "alarms_daily",
    }

    # The device daily summary against the seeded rows.
    labels = {v: k for k, v in (seeded.datapoints | seeded.door_datapoints).items()}
    values: dict[tuple[int, str], list[float]] = defaultdict(list)
    hours: dict[tuple[int, str], set[int]] = defaultdict(set)
    for at, device, datapoint, value in seeded.readings:
        if datapoint in labels and seeded.start <= at < seeded.end:
            values[(device, labels[datapoint])].append(value)
            hours[(device, labels[datapoint])].add(at.hour)
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT device_id, datapoint_label, unit, readings, min_value, max_value, avg_value, uptime_share, "
            "completeness, has_implausible_values FROM f2_analytics_test.device_daily_summary "
            "WHERE day = %s AND device_id = ANY(%s)",
            (seeded.start, seeded.device_ids),
        ).fetchall()
        fleet = conn.execute(
            "SELECT periodic_devices, reporting_devices, devices_without_data, readings "
            "FROM f2_analytics_test.fleet_health_daily WHERE day = %s",
            (seeded.start,),
        ).fetchone()
    found = {(r[0], r[1]): r[2:] for r in rows}
    assert set(found) == set(values)
    implausible = {seeded.devices[s.OUT_OF_RANGE]}
    units = {"Temperature": "°C", "Humidity": "%", "CO2": "ppm", "door-sensor-1": None}
    for key, (unit, readings, low, high, avg, uptime, completeness, flagged) in found.items():
        expected = values[key]
        assert unit == units[key[1]]
        assert (readings, low, high) == (len(expected), min(expected), max(expected)), key
        assert avg == pytest.approx(sum(expected) / len(expected), rel=1e-12)
        assert float(uptime) == round(len(hours[key]) / 24, 4), key
        if key[0] == seeded.devices[s.DOOR]:
            assert completeness is None, "a status device has no expected readings"
        else:
            assert float(completeness) == round(min(1.0, len(expected) / s.FRAMES_PER_DAY), 4), key
        assert flagged == (key[0] in implausible), key
    assert float(found[(seeded.devices[s.SILENT], "CO2")][5]) == round(15 / 24, 4)
    assert float(found[(seeded.devices[s.GAP], "CO2")][5]) == round(22 / 24, 4)

    assert fleet is not None
    periodic, reporting, without, readings_total = fleet
    assert reporting + without == periodic and reporting >= len(s.periodic(seeded))
    # Fleet health counts periodic devices only (the door reports on change).
    assert readings_total >= sum(len(v) for (d, _), v in values.items() if d != seeded.devices[s.DOOR])
