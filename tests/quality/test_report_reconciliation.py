"""The daily report's reconciliation section: read from reconciliation_results of the day and the report's
controllers (rows written here, sums computed here), shown on the page."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from f2_platform.defs.resources import KafkaAdminResource, RegistryResource, TimescaleResource
from f2_platform.quality.report import generate_daily_report
from streaming.settings import ConnectionSettings
from tests.quality import seed as s

pytestmark = pytest.mark.integration

OTHER_MAC = "d0c0ffee09ff"  # another controller's results: outside the report's scope


def insert(ts: psycopg.Connection, hour: datetime, mac: str, passed: bool, raw: int, differences: int) -> None:
    difference_list = [{"kind": "not-processed", "partition": 0, "offset": 7}] * differences
    ts.execute(
        "INSERT INTO reconciliation_results (hour, controller_mac, passed, bridge_counted, raw_records, stored, "
        "dead_lettered, ignored, readings_expected, readings_in_f2_decoded, readings_stored, events_expected, "
        "events_in_f2_events, events_stored, dead_letters_by_reason, rescuable, differences, difference_list, "
        "registry_version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 0, 0, %s, 0, 0, 0, %s, 1, %s, %s, 4)",
        (hour, mac, passed, raw, raw, raw - 2 - differences, 2, 0, 3 * raw,
         json.dumps({"crc": 1, "unknown-controller": 1}), differences, json.dumps(difference_list)),
    )  # fmt: skip


def test_the_days_reconciliation_is_a_section_of_the_report(
    quality_env, seeded: s.SeededDay, migrated: ConnectionSettings, tmp_path: Path
) -> None:
    start = datetime(seeded.day.year, seeded.day.month, seeded.day.day, tzinfo=UTC)
    rows = [(start + timedelta(hours=h), s.MAC, h != 5, 10 + h, 0 if h != 5 else 3) for h in range(24)]
    rows.append((start + timedelta(hours=3), OTHER_MAC, False, 99, 9))
    rows.append((start + timedelta(days=1), s.MAC, False, 99, 9))  # the next day
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as ts:
        for row in rows:
            insert(ts, *row)
        try:
            generated = generate_daily_report(
                seeded.day, TimescaleResource(), RegistryResource(), KafkaAdminResource(), tmp_path, [s.MAC]
            )
        finally:
            ts.execute("DELETE FROM reconciliation_results WHERE controller_mac = ANY(%s)", ([s.MAC, OTHER_MAC],))
    section = generated.report["reconciliation"]
    raw = sum(10 + h for h in range(24))
    assert section["hours_reconciled"] == 24 and section["hours_failed"] == 1
    assert section["raw_records"] == section["bridge_counted"] == raw
    assert section["stored"] == raw - 2 * 24 - 3 and section["dead_lettered"] == 2 * 24 and section["ignored"] == 0
    assert section["readings_stored"] == 3 * raw and section["rescuable"] == 24 and section["differences"] == 3
    assert section["dead_letters_by_reason"] == {"crc": 24, "unknown-controller": 24}
    assert section["registry_versions"] == [4]
    assert section["failed"] == [
        {"hour": (start + timedelta(hours=5)).isoformat(), "controller": s.MAC, "raw_records": 15, "differences": 3}
    ]
    assert generated.report["summary"]["reconciliation_failed_hours"] == 1
    assert generated.report["summary"]["reconciliation_differences"] == 3
    assert json.loads(generated.files.json.read_text())["reconciliation"] == section
    page = generated.files.html.read_text()
    assert "Reconciliation across hops" in page and "1 / 24" in page
    assert (start + timedelta(hours=5)).isoformat() in page
