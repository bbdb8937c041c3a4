"""The event aggregates, their checks and the door-held-open alert against the real database and a real HTTP
receiver: the seeded day's events (tests/quality/event_seed.py) materialized by the events jobs hold exactly the
numbers computed there; a door held open fails the WARN check and is posted once per open run, also when the
partition runs again; a re-run gives the same rows; an invalid event fails the blocking check."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import psycopg
import pytest

from f2_platform.quality import alerts
from tests.quality import event_seed as e
from tests.quality.conftest import Receiver, hourly_range_tags

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def seeded_events(migrated, quality_env) -> Iterator[list[e.Event]]:
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
        seeded = e.seed(conn)
    try:
        yield seeded
    finally:
        with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
            e.remove(conn)


def forget_alerts(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM event_alerts WHERE controller_mac = ANY(%s)", (list(e.MACS),))


def door_alerts(receiver: Receiver) -> list[dict[str, Any]]:
    return [body for body in receiver.of_kind(alerts.KIND_DOOR_HELD_OPEN) if _ours(body)]


def _ours(body: dict[str, Any]) -> bool:
    return any(d["controller_mac"] in e.MACS for d in body["details"]["doors"])


def alerted_runs(bodies: list[dict[str, Any]]) -> list[tuple[str, int, str, datetime]]:
    return [
        (d["controller_mac"], d["connector"], d["component"], datetime.fromisoformat(d["run_start"]))
        for body in bodies
        for d in body["details"]["doors"]
    ]


def check_results(result: dg.ExecuteInProcessResult) -> list[dg.AssetCheckEvaluation]:
    return [ev.event_specific_data for ev in result.all_events if ev.event_type_value == "ASSET_CHECK_EVALUATION"]


@pytest.fixture(scope="module")
def materialized(seeded_events: list[e.Event], code_location, instance, receiver: Receiver, migrated) -> dict[str, Any]:
    """The seeded day's 24 hours in one range run and the day; the alerts they posted."""
    forget_alerts(migrated.timeseries_dsn)
    receiver.clear()
    before = datetime.now(UTC)
    hourly = code_location.resolve_job_def("events_hourly_job").execute_in_process(
        instance=instance, tags=hourly_range_tags(e.DAY_START, 24)
    )
    daily = code_location.resolve_job_def("events_daily_job").execute_in_process(
        instance=instance, partition_key=e.DAY.isoformat()
    )
    return {"hourly": hourly, "daily": daily, "alerts": door_alerts(receiver), "before": before}


def stored_activity(dsn: str, table: str) -> dict[tuple[datetime, str, int, str], tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT bucket, controller_mac, connector, component, events, access_attempts, distinct_credentials, "  # noqa: S608
            f"open_count, round(open_s::numeric, 6)::float8, round(longest_open_s::numeric, 6)::float8, outages, "
            f"round(outage_s::numeric, 6)::float8 FROM {table} "
            "WHERE controller_mac = ANY(%s) AND bucket >= %s AND bucket < %s",
            (list(e.MACS), e.DAY_START, e.DAY_START + DAY),
        ).fetchall()
    return {(r[0], r[1], r[2], r[3]): tuple(r[4:]) for r in rows}


def stored_counts(dsn: str, table: str) -> dict[tuple, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT bucket, controller_mac, connector, component, kind, state, events FROM {table} "  # noqa: S608
            "WHERE controller_mac = ANY(%s) AND bucket >= %s AND bucket < %s",
            (list(e.MACS), e.DAY_START, e.DAY_START + DAY),
        ).fetchall()
    return {tuple(r[:6]): r[6] for r in rows}


def test_aggregates_hold_the_seeded_numbers(materialized: dict[str, Any], seeded_events, migrated) -> None:
    assert materialized["hourly"].success and materialized["daily"].success
    now = datetime.now(UTC)
    hourly = stored_activity(migrated.timeseries_dsn, "event_activity_hourly")
    daily = stored_activity(migrated.timeseries_dsn, "event_activity_daily")
    assert hourly == e.expected_activity(seeded_events, e.DAY_START, HOUR, now)
    assert daily == e.expected_activity(seeded_events, e.DAY_START, DAY, now)
    assert stored_counts(migrated.timeseries_dsn, "event_counts_hourly") == e.expected_counts(seeded_events, HOUR)
    assert stored_counts(migrated.timeseries_dsn, "event_counts_daily") == e.expected_counts(seeded_events, DAY)

    # The numbers an operator reads, by hand: (events, attempts, credentials, openings, open s, longest s,
    # outages, offline s).
    door, reader, ctrl = (e.MAC_A, 1, "door-sensor-1"), (e.MAC_A, 1, "reader-1"), (e.MAC_A, 0, "controller")
    h = lambda hour: e.DAY_START + hour * HOUR  # noqa: E731
    assert hourly[(h(8), *reader)] == (4, 3, 2, 0, 0.0, 0.0, 0, 0.0)
    assert hourly[(h(9), *reader)] == (1, 1, 1, 0, 0.0, 0.0, 0, 0.0)
    assert hourly[(h(0), *door)] == (1, 0, 0, 0, 120.0, 120.0, 0, 0.0)  # open since the day before
    assert hourly[(h(8), *door)] == (3, 0, 0, 2, 327.0, 300.0, 0, 0.0)
    assert hourly[(h(9), *door)] == (1, 0, 0, 0, 600.0, 600.0, 0, 0.0)
    assert hourly[(h(10), *door)] == (3, 0, 0, 1, 120.0, 120.0, 0, 0.0)  # reported open twice: one opening
    assert hourly[(h(23), *door)] == (1, 0, 0, 1, 120.0, 120.0, 0, 0.0)  # still open at the day's end
    assert hourly[(h(11), *ctrl)] == (2, 0, 0, 0, 0.0, 0.0, 1, 2700.0)
    assert hourly[(h(0), e.MAC_B, 0, "controller")] == (0, 0, 0, 0, 0.0, 0.0, 0, 3600.0)  # offline, no event
    assert hourly[(h(1), e.MAC_B, 0, "controller")] == (1, 0, 0, 0, 0.0, 0.0, 0, 1800.0)
    assert daily[(e.DAY_START, *reader)] == (5, 4, 3, 0, 0.0, 0.0, 0, 0.0)
    assert daily[(e.DAY_START, *door)] == (9, 0, 0, 4, 1287.0, 900.0, 0, 0.0)
    assert daily[(e.DAY_START, e.MAC_B, 0, "controller")] == (1, 0, 0, 0, 0.0, 0.0, 0, 5400.0)

    # Every check ran and passed but the door warnings.
    evaluations = check_results(materialized["hourly"]) + check_results(materialized["daily"])
    by_name: dict[str, list[dg.AssetCheckEvaluation]] = {}
    for evaluation in evaluations:
        by_name.setdefault(evaluation.check_name, []).append(evaluation)
    assert set(by_name) == {"events_valid", "event_aggregates_consistent", "door_held_open", "reader_flood"}
    passing = ("events_valid", "event_aggregates_consistent", "reader_flood")
    assert all(ev.passed for name in passing for ev in by_name[name])
    held = [ev for ev in by_name["door_held_open"] if not ev.passed]
    assert held and all(ev.severity == dg.AssetCheckSeverity.WARN for ev in held)

    # The materialization's metadata: numbers the UI plots, and the events per kind and state.
    (daily_event,) = materialized["daily"].get_asset_materialization_events()
    metadata = daily_event.materialization.metadata
    assert metadata["access_attempts"].value >= 4 and metadata["door_openings"].value >= 4
    assert "| access | - |" in str(metadata["summary"].value)
    assert {"kind", "state", "events"} <= {c.name for c in metadata["events_by_kind_state"].value.schema.columns}


def test_each_door_run_held_open_is_alerted_once(materialized: dict[str, Any], seeded_events) -> None:
    """Over the range run and the daily run: the three runs held open longer than the threshold (the one from
    the day before, 15 minutes across 09:00, the one still open) are each posted exactly once, although the
    09:00 hour and the day see runs already alerted."""
    now = datetime.now(UTC)
    expected = e.held_open_runs(seeded_events, e.DAY_START, e.DAY_START + DAY, now)
    assert set(expected) == {
        (e.MAC_A, 1, "door-sensor-1", e.hms(23, 50, day_offset=-1)),
        (e.MAC_A, 1, "door-sensor-1", e.hms(8, 55)),
        (e.MAC_A, 1, "door-sensor-1", e.hms(23, 58)),
    }
    runs = alerted_runs(materialized["alerts"])
    assert sorted(runs) == sorted(expected)
    assert all(body["severity"] == "WARN" for body in materialized["alerts"])


def test_door_held_open_warns_and_posts_one_alert(
    seeded_events, code_location, instance, receiver: Receiver, migrated
) -> None:
    """The hour 08:00 alone: the door held open 15 minutes from 08:55 fails the WARN check and posts exactly one
    alert; running the partition again fails the check again and posts nothing."""
    forget_alerts(migrated.timeseries_dsn)
    receiver.clear()
    key = e.hms(8, 0).strftime("%Y-%m-%d-%H:%M")
    job = code_location.resolve_job_def("events_hourly_job")
    first = job.execute_in_process(instance=instance, partition_key=key)
    assert first.success  # a warning never fails the run
    (held,) = [ev for ev in check_results(first) if ev.check_name == "door_held_open"]
    assert not held.passed and held.severity == dg.AssetCheckSeverity.WARN
    assert held.metadata["failure_count"].value == 1 and held.metadata["runs_alerted_now"].value == 1
    (body,) = door_alerts(receiver)
    (door,) = body["details"]["doors"]
    assert (door["controller_mac"], door["component"], door["held_s"], door["still_open"]) == (
        e.MAC_A,
        "door-sensor-1",
        900.0,
        False,
    )
    assert datetime.fromisoformat(door["run_start"]) == e.hms(8, 55)
    assert body["details"]["threshold_s"] == e.HELD_OPEN_S and "door-sensor-1" in body["text"]

    again = job.execute_in_process(instance=instance, partition_key=key)
    (held_again,) = [ev for ev in check_results(again) if ev.check_name == "door_held_open"]
    assert not held_again.passed and held_again.metadata["runs_alerted_before"].value == 1
    assert len(door_alerts(receiver)) == 1


def test_a_rerun_gives_the_same_rows(materialized: dict[str, Any], code_location, instance, migrated) -> None:
    dsn = migrated.timeseries_dsn
    tables = ("event_activity_hourly", "event_activity_daily", "event_counts_hourly", "event_counts_daily")
    before = {t: (stored_activity if "activity" in t else stored_counts)(dsn, t) for t in tables}
    code_location.resolve_job_def("events_hourly_job").execute_in_process(
        instance=instance, partition_key=e.hms(8, 0).strftime("%Y-%m-%d-%H:%M")
    )
    code_location.resolve_job_def("events_daily_job").execute_in_process(
        instance=instance, partition_key=e.DAY.isoformat()
    )
    after = {t: (stored_activity if "activity" in t else stored_counts)(dsn, t) for t in tables}
    assert after == before
    with psycopg.connect(dsn, autocommit=True) as conn:
        (rows,) = conn.execute(
            "SELECT count(*) FROM event_activity_hourly WHERE bucket = %s AND controller_mac = ANY(%s)",
            (e.hms(8, 0), list(e.MACS)),
        ).fetchone() or (0,)
    assert rows == 3  # reader, door, strike of A at 08:00; one row each, never a second


def test_a_component_no_longer_found_is_set_to_zero(code_location, instance, migrated, quality_env) -> None:
    """A recomputation that no longer finds a row of its window (its only event is gone) keeps the row's key with
    every number 0, by UPDATE: the write path never DELETEs (the hypertables may hold compressed chunks)."""
    hour = e.DAY_START - 4 * DAY + 15 * HOUR
    key = hour.strftime("%Y-%m-%d-%H:%M")
    job = code_location.resolve_job_def("events_hourly_job")
    try:
        with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
            e.remove(conn, (e.MAC_BAD,))
            conn.execute(
                'INSERT INTO device_events ("time", controller_mac, connector, component, kind, state) '
                "VALUES (%s, %s, 3, 'siren-2', 'state', 'powered')",
                (hour + timedelta(minutes=1), e.MAC_BAD),
            )
        first = job.execute_in_process(instance=instance, partition_key=key)
        with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM device_events WHERE controller_mac = %s", (e.MAC_BAD,))
        second = job.execute_in_process(instance=instance, partition_key=key)
        with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
            activity = conn.execute(
                "SELECT component, events, access_attempts, distinct_credentials, open_count, open_s, longest_open_s, "
                "outages, outage_s FROM event_activity_hourly WHERE bucket = %s AND controller_mac = %s",
                (hour, e.MAC_BAD),
            ).fetchall()
            counts = conn.execute(
                "SELECT component, kind, state, events FROM event_counts_hourly "
                "WHERE bucket = %s AND controller_mac = %s",
                (hour, e.MAC_BAD),
            ).fetchall()
    finally:
        with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
            e.remove(conn, (e.MAC_BAD,))
    assert first.success and second.success  # both checks pass on the zeroed row too
    metadata = next(ev.materialization.metadata for ev in first.get_asset_materialization_events())
    assert metadata["rows_written"].value >= 2 and metadata["rows_zeroed"].value == 0
    metadata = next(ev.materialization.metadata for ev in second.get_asset_materialization_events())
    assert metadata["rows_zeroed"].value == 2  # its activity row and its counts row
    assert activity == [("siren-2", 0, 0, 0, 0, 0.0, 0.0, 0, 0.0)]
    assert counts == [("siren-2", "state", "powered", 0)]


def test_invalid_events_fail_the_blocking_check(
    code_location, instance, receiver: Receiver, migrated, quality_env
) -> None:
    """A door in an unknown state and a negative duration, in an hour of their own (the day before the seeded
    day's events): events_valid fails as a blocking ERROR and posts the blocking-check alert."""
    bad_hour = e.DAY_START - 2 * DAY + 12 * HOUR
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
        conn.execute(
            'INSERT INTO device_events ("time", controller_mac, connector, component, kind, state, previous_state, '
            "previous_duration_s) VALUES (%s, %s, 1, 'door-sensor-1', 'state', 'ajar', 'closed', -5), "
            "(%s, %s, 1, 'gate-1', 'state', 'open', NULL, NULL)",
            (bad_hour + timedelta(minutes=5), e.MAC_BAD, bad_hour + timedelta(minutes=6), e.MAC_BAD),
        )
    receiver.clear()
    try:
        result = code_location.resolve_job_def("events_hourly_job").execute_in_process(
            instance=instance, partition_key=bad_hour.strftime("%Y-%m-%d-%H:%M"), raise_on_error=False
        )
    finally:
        with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
            e.remove(conn, (e.MAC_BAD,))
    (valid,) = [ev for ev in check_results(result) if ev.check_name == "events_valid"]
    assert not valid.passed and valid.severity == dg.AssetCheckSeverity.ERROR
    assert valid.metadata["failure_count"].value == 2
    failed = str(valid.metadata["failing_rows_sample"].value)
    for name in ("valid_state", "previous_duration_not_negative", "component_naming"):
        assert name in failed, name
    (body,) = [b for b in receiver.of_kind(alerts.KIND_BLOCKING_CHECK) if b["details"]["check"] == "events_valid"]
    assert body["details"]["asset"] == "events_hourly"


def test_a_flooded_reader_warns(code_location, instance, migrated, quality_env) -> None:
    """31 scans of one card on one reader within a minute (more than the default 30), and 30 on another reader
    (not more): reader_flood fails as a WARN on the first only; the run succeeds."""
    hour = e.DAY_START - 3 * DAY + 9 * HOUR
    rows = [(hour + timedelta(minutes=7, seconds=k), "reader-1", e.FP1) for k in range(31)]
    rows += [(hour + timedelta(minutes=20, seconds=k), "reader-2", e.FP2) for k in range(30)]
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
        e.remove(conn, (e.MAC_BAD,))
        for at, reader, fingerprint in rows:
            conn.execute(
                'INSERT INTO device_events ("time", controller_mac, connector, component, kind, '
                "credential_fingerprint, credential_key_id, credential_length) "
                "VALUES (%s, %s, 1, %s, 'access', %s, 'k1', 11)",
                (at, e.MAC_BAD, reader, fingerprint),
            )
    try:
        result = code_location.resolve_job_def("events_hourly_job").execute_in_process(
            instance=instance, partition_key=hour.strftime("%Y-%m-%d-%H:%M")
        )
    finally:
        with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
            e.remove(conn, (e.MAC_BAD,))
    assert result.success
    (flood,) = [ev for ev in check_results(result) if ev.check_name == "reader_flood"]
    assert not flood.passed and flood.severity == dg.AssetCheckSeverity.WARN
    assert flood.metadata["failure_count"].value == 1
    (row,) = flood.metadata["failing_rows_sample"].value
    assert (row["component"], row["scans"], row["credentials"]) == ("reader-1", 31, 1)
    assert datetime.fromisoformat(row["minute"]) == hour + timedelta(minutes=7)


@pytest.fixture(scope="module")
def events_report(seeded_events, quality_env, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The seeded day's data-quality report of our two controllers, written by `f2 report dq`."""
    import json

    from click.testing import CliRunner

    from f2_platform.cli.report import report as report_group

    out = tmp_path_factory.mktemp("dq-events")
    result = CliRunner().invoke(
        report_group,
        ["dq", "--date", e.DAY.isoformat(), "--controller", e.MAC_A, "--controller", e.MAC_B, "--out", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    (sidecar,) = out.glob("*.json")
    (html,) = out.glob("*.html")
    return {"report": json.loads(sidecar.read_text()), "html": html.read_text()}


def test_the_report_has_the_events_section(events_report: dict[str, Any], seeded_events) -> None:
    report = events_report["report"]
    section = report["events"]
    as_of = datetime.fromisoformat(report["as_of"])
    day = [x for x in seeded_events if e.DAY_START <= x.time < e.DAY_START + DAY]
    assert section["total"] == len(day)
    assert section["by_kind"] == {
        k: sum(1 for x in day if x.kind == k) for k in ("state", "access", "indicator", "presence")
    }
    by_hour = {datetime.fromisoformat(h["hour"]): h["counts"] for h in section["by_hour"] if h["counts"]}
    assert by_hour[e.hms(8, 0)] == {"access": 3, "indicator": 1, "state": 5}

    (reader,) = section["access"]["by_reader"]
    assert (reader["component"], reader["attempts"], reader["distinct_credentials"]) == ("reader-1", 4, 3)
    top = [(c["fingerprint"], c["attempts"]) for c in section["access"]["top_credentials"]]
    assert top == [(e.FP1, 2), (e.FP2, 1), (e.FP3, 1)]

    assert {a["component"]: a["activations"] for a in section["alarms"]} == {
        "siren-1": 1,
        "strike-1": 1,
        "motion-sensor-1": 2,
        "exit-button-1": 1,
    }
    (door,) = section["doors"]
    assert (door["component"], door["openings"], door["open_s"], door["held_open_runs"]) == (
        "door-sensor-1",
        4,
        120 + 27 + 900 + 120 + 120,
        3,
    )
    held = {datetime.fromisoformat(h["run_start"]): (h["held_s"], h["still_open"]) for h in section["door_held_open"]}
    still_open_s = (as_of - e.hms(23, 58)).total_seconds()
    assert set(held) == {e.hms(23, 50, day_offset=-1), e.hms(8, 55), e.hms(23, 58)}
    assert held[e.hms(8, 55)] == (900.0, False) and held[e.hms(23, 50, day_offset=-1)] == (720.0, False)
    assert held[e.hms(23, 58)][1] and held[e.hms(23, 58)][0] == pytest.approx(still_open_s, abs=120)

    outages = {(o["controller_mac"], datetime.fromisoformat(o["start"])): o for o in section["outages"]}
    assert set(outages) == {(e.MAC_A, e.hms(11, 0)), (e.MAC_B, e.hms(22, 0, day_offset=-1))}
    assert (outages[(e.MAC_A, e.hms(11, 0))]["length_s"], outages[(e.MAC_A, e.hms(11, 0))]["offline_in_day_s"]) == (
        2700.0,
        2700.0,
    )
    assert (
        outages[(e.MAC_B, e.hms(22, 0, day_offset=-1))]["length_s"],
        outages[(e.MAC_B, e.hms(22, 0, day_offset=-1))]["offline_in_day_s"],
    ) == (12600.0, 5400.0)
    summary = report["summary"]
    assert (summary["events"], summary["access_attempts"], summary["doors_held_open"], summary["presence_outages"]) == (
        len(day),
        4,
        3,
        2,
    )
    html = events_report["html"]
    for text in ("Access, alarm and presence events", "Doors held open (warning)", "still open", e.MAC_B, "reader-1"):
        assert text in html, text
    for key in ("events_by_hour", "access", "doors", "outages"):
        assert f'data-chart="{key}"' in html, key


def test_event_charts_are_readable(events_report: dict[str, Any]) -> None:
    """As tests/quality/test_report.py's test_charts_are_readable, for the events section's charts on a day that
    has every kind of event (so none is an empty placeholder)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from f2_platform.quality.report.charts import EVENT_CHARTS

    report = events_report["report"]
    legends = {}
    for key, (_, draw) in EVENT_CHARTS.items():
        figure = draw(report)
        renderer = FigureCanvasAgg(figure).get_renderer()
        figure.draw(renderer)
        visible = [axes for axes in figure.axes if axes.axison]
        assert visible, f"{key}: no axes drawn (an empty placeholder?)"
        for axes in visible:
            assert axes.get_xlabel() and axes.get_ylabel(), f"{key}: axis without a label"
            for label in (axes.get_xlabel(), axes.get_ylabel()):
                assert "(" in label or "·" in label, f"{key}: {label!r} names no unit"
            legend = axes.get_legend()
            if legend is None:
                continue
            legends[key] = legend
            box, area = legend.get_window_extent(renderer), axes.get_window_extent(renderer)
            apart = box.x0 >= area.x1 or box.x1 <= area.x0 or box.y0 >= area.y1 or box.y1 <= area.y0
            assert apart, f"{key}: the legend {box} covers the data area {area}"
            drawn = figure.get_tightbbox(renderer)
            dpi_box = box.transformed(figure.dpi_scale_trans.inverted())
            assert drawn.x1 >= dpi_box.x1 - 1e-6, f"{key}: the legend is cut off the picture"
    assert set(legends) == {"events_by_hour", "access", "doors"}
    assert [t.get_text() for t in legends["events_by_hour"].get_texts()] == [
        f"{kind} ({n})" for kind, n in report["events"]["by_kind"].items() if n
    ]


def test_dbt_marts_hold_the_seeded_events(seeded_events, migrated, quality_env, tmp_path) -> None:
    """`dbt build` of the seeded day (models and every dbt test pass); the access and alarm marts hold the numbers
    computed here from the seeded events."""
    import json
    import os
    import subprocess

    from f2_platform.defs.analytics.assets import dbt_vars
    from f2_platform.defs.analytics.project import DBT_PROJECT_DIR, dbt_executable, profile_environment

    env = {**os.environ, **profile_environment(migrated.timeseries_dsn), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    schema = env["F2_DBT_SCHEMA"]
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
            dbt_vars(e.DAY_START, e.DAY_START + DAY),
        ],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    statuses = {r["unique_id"]: r["status"] for r in json.loads((target / "run_results.json").read_text())["results"]}
    assert all(status in ("success", "pass") for status in statuses.values()), statuses
    ours = ("access_daily", "access_credentials_daily", "alarms_daily", "stg_device_events")
    assert {u.split(".")[-1] for u in statuses if u.startswith("model.")} >= set(ours)
    assert any("assert_access_credentials_add_up" in u for u in statuses)

    day = [x for x in seeded_events if e.DAY_START <= x.time < e.DAY_START + DAY]
    stored = {s.event: s for s in e.with_previous(seeded_events)}
    try:
        with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
            access = conn.execute(
                f"SELECT reader, attempts, distinct_credentials, first_attempt_at, last_attempt_at "  # noqa: S608
                f"FROM {schema}.access_daily WHERE day = %s AND controller_mac = ANY(%s)",
                (e.DAY_START, list(e.MACS)),
            ).fetchall()
            credentials = conn.execute(
                f"SELECT credential_fingerprint, attempts FROM {schema}.access_credentials_daily "  # noqa: S608
                "WHERE day = %s AND controller_mac = ANY(%s)",
                (e.DAY_START, list(e.MACS)),
            ).fetchall()
            alarms = conn.execute(
                f"SELECT component, activations, runs_ended, active_s, longest_active_s "  # noqa: S608
                f"FROM {schema}.alarms_daily WHERE day = %s AND controller_mac = ANY(%s)",
                (e.DAY_START, list(e.MACS)),
            ).fetchall()
    finally:
        with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
            for mart in ("access_daily", "access_credentials_daily", "alarms_daily"):
                conn.execute(f"DELETE FROM {schema}.{mart} WHERE controller_mac = ANY(%s)", (list(e.MACS),))  # noqa: S608
    scans = sorted(x.time for x in day if x.kind == "access")
    assert access == [("reader-1", len(scans), 3, scans[0], scans[-1])]
    assert dict(credentials) == {e.FP1: 2, e.FP2: 1, e.FP3: 1}

    active = {"door-sensor": "open", "siren": "powered", "strike": "powered", "motion-sensor": "detected"}
    active["exit-button"] = "pressed"
    expected: dict[str, tuple[int, int, float, float]] = {}
    for x in day:
        if x.kind != "state":
            continue
        state = active[x.component.rsplit("-", 1)[0]]
        before = stored[x]
        n, ended, total, longest = expected.get(x.component, (0, 0, 0.0, 0.0))
        if x.state == state and before.previous_state != state:
            n += 1
        if before.previous_state == state and x.state != state:
            assert before.previous_duration_s is not None
            ended, total, longest = (
                ended + 1,
                total + before.previous_duration_s,
                max(longest, before.previous_duration_s),
            )
        expected[x.component] = (n, ended, total, longest)
    assert {a[0]: (a[1], a[2], a[3], a[4]) for a in alarms} == expected
    # By hand: the door opened four times; its closes that day ended runs of 12 min (from the day before),
    # 27 s, 15 min and 2 min (the one reported open twice); the run opened at 23:58 has not ended.
    assert expected["door-sensor-1"] == (4, 4, 720 + 27 + 900 + 120, 900)
