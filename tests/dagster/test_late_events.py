"""Late events re-run the event aggregates' partitions they changed (timeseries migration 0010 and the late-data
sensor): events written by the sink's own write path (streaming/sink/writer.py) into a past day are
materialized; then a door's late `closed` ends its open run earlier and a reader's late scan lands in an hour
already aggregated. The sensor asks for exactly the windows they changed (the late event's hour up to that of
the door's next event, the day) once, the runs rewrite them to numbers computed here by hand, and the windows
are no longer pending."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest

from f2_platform.defs.aggregates.late_data_sensor import aggregate_late_data_sensor
from streaming.settings import ConnectionSettings
from streaming.sink.event_rows import EventRow
from streaming.sink.writer import write_events
from tests.dagster.conftest import cursor_of, day_key, day_start, evaluate, hour_key, sensor_context

pytestmark = pytest.mark.integration

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
MAC = "d0c0ffee0711"  # ours alone
DOOR = (MAC, 1, "door-sensor-1")
READER = (MAC, 1, "reader-1")
FP_1, FP_2 = "d1" * 32, "e2" * 32
TABLES = ("event_counts_hourly", "event_counts_daily", "event_activity_hourly", "event_activity_daily")


def door(at: datetime, state: str) -> EventRow:
    topic = f"stat/f2-{MAC}/access-control-mode/J1/door-sensors"
    return EventRow(at, MAC, 1, "door-sensor-1", "state", None, None, state, None, None, None, None, topic, None, None)


def scan(at: datetime, fingerprint: str) -> EventRow:
    topic = f"tele/f2-{MAC}/access-control-mode/J1/reader-1"
    return EventRow(at, MAC, 1, "reader-1", "access", None, None, None, fingerprint, "k1", 10, None, topic, None, None)


class Writes:
    """The transactions our writes ran in: the entries they logged in aggregate_invalidations are ours."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.xacts: list[str] = []

    def store(self, events: list[EventRow]) -> str:
        """Writes `events` as the sink does, in one transaction; its id."""
        with psycopg.connect(self.dsn, autocommit=True) as conn, conn.transaction():
            write_events(conn, events)
            row = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
            assert row is not None
            self.xacts.append(str(row[0]))
        return self.xacts[-1]

    def pending(self, aggregate: str, xacts: list[str] | None = None) -> list[datetime]:
        """The windows of `aggregate` our writes (or those of `xacts` only) left in aggregate_invalidations."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT DISTINCT bucket FROM aggregate_invalidations WHERE aggregate = %s AND xact::text = ANY(%s) "
                "ORDER BY bucket",
                (aggregate, self.xacts if xacts is None else xacts),
            ).fetchall()
        return [r[0] for r in rows]


@pytest.fixture
def writes(migrated: ConnectionSettings, f2_env: dict[str, str]) -> Iterator[Writes]:
    w = Writes(migrated.timeseries_dsn)
    try:
        yield w
    finally:
        with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
            for table in ("device_events", "component_states", "event_alerts", *TABLES):
                conn.execute(f"DELETE FROM {table} WHERE controller_mac = %s", (MAC,))  # noqa: S608 - fixed names
            conn.execute("DELETE FROM aggregate_invalidations WHERE xact::text = ANY(%s)", (w.xacts,))


def activity(dsn: str, table: str) -> dict[tuple[datetime, str], tuple]:
    """(bucket, component) -> (events, access attempts, distinct credentials, openings, open s, longest s)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT bucket, component, events, access_attempts, distinct_credentials, open_count, "  # noqa: S608
            f"round(open_s::numeric, 3)::float8, round(longest_open_s::numeric, 3)::float8 FROM {table} "
            "WHERE controller_mac = %s",
            (MAC,),
        ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def run(code_location: dg.Definitions, instance: dg.DagsterInstance, job: str, **kwargs: object) -> None:
    result = code_location.resolve_job_def(job).execute_in_process(instance=instance, **kwargs)  # type: ignore[arg-type]
    assert result.success


def test_late_events_rerun_exactly_the_windows_they_changed(
    writes: Writes, migrated: ConnectionSettings, code_location, code_resources, instance
) -> None:
    dsn = migrated.timeseries_dsn
    day = day_start(datetime.now(UTC) - 13 * DAY)
    h = lambda hour, minute: day + hour * HOUR + timedelta(minutes=minute)  # noqa: E731
    # The door opens at 08:20 and closes at 11:30; a scan at 09:05. One batch, as the sink stores one.
    writes.store([door(h(8, 10), "closed"), door(h(8, 20), "open"), scan(h(9, 5), FP_1), door(h(11, 30), "closed")])
    run(
        code_location,
        instance,
        "events_hourly_job",
        tags=dict(zip(RANGE_TAGS, (hour_key(h(8, 0)), hour_key(h(12, 0))), strict=True)),
    )
    run(code_location, instance, "events_daily_job", partition_key=day_key(day))
    # The runs consumed what the writes logged inside their windows; what lies outside them (the door closed
    # since 11:30, up to now) stays, for partitions not materialized here.
    assert not [b for b in writes.pending("events_hourly") if h(8, 0) <= b <= h(12, 0)]
    assert day not in writes.pending("events_daily")
    hourly = activity(dsn, "event_activity_hourly")
    assert hourly[(h(8, 0), "door-sensor-1")] == (2, 0, 0, 1, 2400.0, 2400.0)
    assert hourly[(h(9, 0), "door-sensor-1")] == (0, 0, 0, 0, 3600.0, 3600.0)
    assert hourly[(h(10, 0), "door-sensor-1")] == (0, 0, 0, 0, 3600.0, 3600.0)
    assert hourly[(h(11, 0), "door-sensor-1")] == (1, 0, 0, 0, 1800.0, 1800.0)
    assert hourly[(h(9, 0), "reader-1")] == (1, 1, 1, 0, 0.0, 0.0)
    assert activity(dsn, "event_activity_daily")[(day, "door-sensor-1")] == (3, 0, 0, 1, 11400.0, 11400.0)

    first = evaluate(aggregate_late_data_sensor, sensor_context(instance, code_resources, None))
    assert first.run_requests == [] and cursor_of(first) == {}

    # Late: the door had closed at 09:40 already, and a second card was scanned at 12:15.
    writes.store([door(h(9, 40), "closed"), scan(h(12, 15), FP_2)])

    result = evaluate(aggregate_late_data_sensor, sensor_context(instance, code_resources, first.cursor))
    assert result.run_requests is not None
    requested = sorted((r.job_name, r.partition_key) for r in result.run_requests)
    # Hour 08 kept its numbers (the door was open from 08:20 either way): not asked for.
    assert requested == [
        ("events_daily_job", day_key(day)),
        *(("events_hourly_job", hour_key(h(hour, 0))) for hour in (9, 10, 11, 12)),
    ]
    assert {r.tags["f2/trigger"] for r in result.run_requests} == {"late-data"}
    again = evaluate(aggregate_late_data_sensor, sensor_context(instance, code_resources, result.cursor))
    assert again.run_requests == [] and cursor_of(again) == cursor_of(result)

    for request in result.run_requests:
        assert request.job_name is not None
        run(code_location, instance, request.job_name, partition_key=request.partition_key, tags=request.tags)

    hourly = activity(dsn, "event_activity_hourly")
    assert hourly[(h(8, 0), "door-sensor-1")] == (2, 0, 0, 1, 2400.0, 2400.0)
    assert hourly[(h(9, 0), "door-sensor-1")] == (1, 0, 0, 0, 2400.0, 2400.0)
    assert hourly[(h(10, 0), "door-sensor-1")] == (0, 0, 0, 0, 0.0, 0.0)
    assert hourly[(h(11, 0), "door-sensor-1")] == (1, 0, 0, 0, 0.0, 0.0)
    assert hourly[(h(12, 0), "reader-1")] == (1, 1, 1, 0, 0.0, 0.0)
    daily = activity(dsn, "event_activity_daily")
    assert daily[(day, "door-sensor-1")] == (4, 0, 0, 1, 4800.0, 4800.0)
    assert daily[(day, "reader-1")] == (2, 2, 2, 0, 0.0, 0.0)

    done = evaluate(aggregate_late_data_sensor, sensor_context(instance, code_resources, again.cursor))
    assert done.run_requests == [] and cursor_of(done) == {}


def test_a_late_event_that_changes_no_state_marks_its_own_window_only(writes: Writes) -> None:
    """A door reported closed again while closed changes no run: only its own hour and day are marked."""
    day = day_start(datetime.now(UTC) - 17 * DAY)
    writes.store([door(day + 8 * HOUR, "closed"), door(day + 14 * HOUR, "open")])
    before = set(writes.pending("events_hourly"))
    assert day + 8 * HOUR in before and day + 14 * HOUR in before  # a change of state up to the next one

    late = [writes.store([door(day + 10 * HOUR + timedelta(minutes=5), "closed")])]
    assert writes.pending("events_hourly", late) == [day + 10 * HOUR]
    assert writes.pending("events_daily", late) == [day]
