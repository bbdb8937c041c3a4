"""SQL that shapes readings into the frames the data-quality schemas validate (pure text, no connection).

The database does the heavy lifting (grouping a day of readings); the rules themselves live in the pandera
schemas. Where a query must narrow rows down, it uses a looser condition than the rule (a step of more than
two intervals for gaps, any timestamp after the reference time for future readings), so the schema stays
the one place that decides. Registry facts arrive as arrays: the registry may be another database.

A reading without a value (NULL: only a table adopted from the reference deployment holds them) is the
concern of MISSING_VALUES alone. The other concerns judge values and leave it out; it still counts as a
frame received (cadence, gaps, freshness), since the device did report.
"""

from __future__ import annotations

from psycopg import sql

# Frames per device and UTC hour: a frame gives one reading per datapoint, all with the frame's timestamp.
CADENCE = """
SELECT device_id, time_bucket(INTERVAL '1 hour', "timestamp") AS hour,
       count(DISTINCT "timestamp") AS frames, count(*) AS readings
FROM decoded_data
WHERE "timestamp" >= %(start)s AND "timestamp" < %(end)s AND device_id = ANY(%(devices)s::int[])
GROUP BY 1, 2
"""

# Per series and hour: the observed range and how many readings fell outside the plausible range.
PLAUSIBILITY = """
SELECT r.device_id, r.datapoint_id, time_bucket(INTERVAL '1 hour', r."timestamp") AS bucket,
       count(*) AS sample_count, min(r.value) AS min_value, max(r.value) AS max_value,
       count(*) FILTER (WHERE r.value < b.range_min) AS below_count,
       count(*) FILTER (WHERE r.value > b.range_max) AS above_count
FROM decoded_data r
JOIN unnest(%(devices)s::int[], %(datapoints)s::int[], %(mins)s::float8[], %(maxs)s::float8[])
     AS b(device_id, datapoint_id, range_min, range_max)
  ON b.device_id = r.device_id AND b.datapoint_id = r.datapoint_id
WHERE r."timestamp" >= %(start)s AND r."timestamp" < %(end)s AND r.value IS NOT NULL
GROUP BY 1, 2, 3
"""

# Steps between consecutive frames of a device that end inside the window (the previous frame may be up
# to a day earlier) and skip at least one expected frame; the gap rule itself is the schema's.
GAP_CANDIDATES = """
WITH frames AS (
    SELECT DISTINCT device_id, "timestamp"
    FROM decoded_data
    WHERE "timestamp" >= %(lookback)s AND "timestamp" < %(end)s AND device_id = ANY(%(devices)s::int[])
), steps AS (
    SELECT device_id, lag("timestamp") OVER (PARTITION BY device_id ORDER BY "timestamp") AS gap_start,
           "timestamp" AS gap_end
    FROM frames
)
SELECT s.device_id, s.gap_start, s.gap_end, extract(epoch FROM s.gap_end - s.gap_start)::float8 AS gap_s,
       c.interval_s
FROM steps s
JOIN unnest(%(devices)s::int[], %(intervals)s::int[]) AS c(device_id, interval_s) ON c.device_id = s.device_id
WHERE s.gap_end >= %(start)s AND s.gap_start IS NOT NULL
  AND s.gap_end - s.gap_start > make_interval(secs => 2 * c.interval_s)
ORDER BY s.device_id, s.gap_start
"""

# The longest run of one unchanged value per series inside the window (gaps and islands).
STUCK_RUNS = """
WITH r AS (
    SELECT d.device_id, d.datapoint_id, d."timestamp", d.value,
           CASE WHEN d.value IS DISTINCT FROM lag(d.value) OVER w THEN 1 ELSE 0 END AS changed
    FROM decoded_data d
    JOIN unnest(%(devices)s::int[], %(datapoints)s::int[]) AS s(device_id, datapoint_id)
      ON s.device_id = d.device_id AND s.datapoint_id = d.datapoint_id
    WHERE d."timestamp" >= %(start)s AND d."timestamp" < %(end)s AND d.value IS NOT NULL
    WINDOW w AS (PARTITION BY d.device_id, d.datapoint_id ORDER BY d."timestamp")
), runs AS (
    SELECT device_id, datapoint_id, value, "timestamp",
           sum(changed) OVER (PARTITION BY device_id, datapoint_id ORDER BY "timestamp") AS run
    FROM r
), spans AS (
    SELECT device_id, datapoint_id, run, min(value) AS value, min("timestamp") AS run_start,
           max("timestamp") AS run_end, count(*) AS samples
    FROM runs
    GROUP BY device_id, datapoint_id, run
)
SELECT DISTINCT ON (device_id, datapoint_id)
       device_id, datapoint_id, value, run_start, run_end,
       extract(epoch FROM run_end - run_start)::float8 AS run_s, samples
FROM spans
ORDER BY device_id, datapoint_id, run_end - run_start DESC, samples DESC
"""

# Each device's newest reading at or before a moment, looking back no further than a horizon.
LAST_SEEN = """
SELECT c.device_id,
       (SELECT max(r."timestamp") FROM decoded_data r
         WHERE r.device_id = c.device_id AND r."timestamp" < %(at)s AND r."timestamp" > %(horizon)s) AS last_seen
FROM unnest(%(devices)s::int[]) AS c(device_id)
"""

# Candidates for the readings schema: anything stamped after the reference time, and non-finite values in
# the window (the primary key already rules out duplicate keys; missing values are MISSING_VALUES').
# `total` counts every candidate of its kind, before the limit.
SUSPECT_READINGS = """
(SELECT "timestamp", device_id, datapoint_id, value, 'future' AS kind, count(*) OVER () AS total
   FROM decoded_data
  WHERE "timestamp" > %(as_of)s AND value IS NOT NULL
    AND (%(devices)s::int[] IS NULL OR device_id = ANY(%(devices)s::int[]))
  ORDER BY "timestamp", device_id, datapoint_id
  LIMIT %(limit)s)
UNION ALL
(SELECT "timestamp", device_id, datapoint_id, value, 'non-finite' AS kind, count(*) OVER () AS total
   FROM decoded_data
  WHERE "timestamp" >= %(start)s AND "timestamp" < %(end)s
    AND value IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)
    AND (%(devices)s::int[] IS NULL OR device_id = ANY(%(devices)s::int[]))
  ORDER BY "timestamp", device_id, datapoint_id
  LIMIT %(limit)s)
"""

# Every reading with a value of a (short) window plus the future ones: what the readings schema validates in full.
RECENT_READINGS = """
SELECT "timestamp", device_id, datapoint_id, value
FROM decoded_data
WHERE "timestamp" >= %(start)s AND value IS NOT NULL
  AND (%(devices)s::int[] IS NULL OR device_id = ANY(%(devices)s::int[]))
ORDER BY "timestamp", device_id, datapoint_id
LIMIT %(limit)s
"""

# Per series and hour of the window: the readings without a value, and the first and last of them.
MISSING_VALUES = """
SELECT device_id, datapoint_id, time_bucket(INTERVAL '1 hour', "timestamp") AS bucket,
       count(*) AS missing_count, min("timestamp") AS first_missing, max("timestamp") AS last_missing
FROM decoded_data
WHERE "timestamp" >= %(start)s AND "timestamp" < %(end)s AND value IS NULL
  AND (%(devices)s::int[] IS NULL OR device_id = ANY(%(devices)s::int[]))
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""

AGGREGATE_COLUMNS = (
    "bucket",
    "device_id",
    "datapoint_id",
    "avg_value",
    "min_value",
    "max_value",
    "sample_count",
    "first_value",
    "last_value",
    "stddev_value",
)


def aggregate_rows(table: str) -> sql.Composed:
    """Rows of an aggregate (readings_hourly or readings_daily) whose bucket lies in the window."""
    if table not in ("readings_hourly", "readings_daily"):
        raise ValueError(f"not an aggregate: {table}")
    return sql.SQL(
        "SELECT {columns} FROM {table} WHERE bucket >= %(start)s AND bucket < %(end)s "
        "AND (%(devices)s::int[] IS NULL OR device_id = ANY(%(devices)s::int[])) "
        "ORDER BY bucket, device_id, datapoint_id"
    ).format(columns=sql.SQL(", ").join(map(sql.Identifier, AGGREGATE_COLUMNS)), table=sql.Identifier(table))
