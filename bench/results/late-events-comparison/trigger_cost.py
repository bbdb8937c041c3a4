"""Cost of device_events_late_insert on in-order current events: the sink's write_events, batches of 500,
with the trigger enabled and disabled, alternating."""
import sys, time
from datetime import UTC, datetime, timedelta
import psycopg
from streaming.sink.event_rows import EventRow
from streaming.sink.writer import write_events

dsn = sys.argv[1]
MAC = "b0b0b0b0b0b0"
N, BATCH = 20_000, 500
CREATE = """CREATE TRIGGER device_events_late_insert BEFORE INSERT ON device_events FOR EACH ROW
    WHEN (NEW."time" < time_bucket(INTERVAL '1 hour', clock_timestamp())) EXECUTE FUNCTION f2_log_late_event()"""

def events(base):
    out = []
    for i in range(N):
        comp = f"door-sensor-{i % 40 + 1}"
        out.append(EventRow(base + timedelta(milliseconds=i), MAC, 1, comp, "state", None, None,
                            "open" if (i // 40) % 2 else "closed", None, None, None, None, "t", None, None))
    return out

def clean(conn):
    conn.execute("DELETE FROM device_events WHERE controller_mac = %s", (MAC,))
    conn.execute("DELETE FROM component_states WHERE controller_mac = %s", (MAC,))

with psycopg.connect(dsn, autocommit=True) as conn:
    results = {"enabled": [], "disabled": []}
    q = "SELECT count(*) FROM aggregate_invalidations WHERE aggregate LIKE 'events_%%'"
    before = conn.execute(q).fetchone()[0]
    for round_ in range(3):
        for mode in ("enabled", "disabled"):
            clean(conn)
            conn.execute("DROP TRIGGER IF EXISTS device_events_late_insert ON device_events")
            if mode == "enabled":
                conn.execute(CREATE)
            now = datetime.now(UTC)
            base = now.replace(minute=0, second=0, microsecond=0) + timedelta(seconds=1)
            evs = events(base)
            assert evs[-1].time < now + timedelta(hours=1)
            t = time.perf_counter()
            for k in range(0, N, BATCH):
                with conn.transaction():
                    write_events(conn, evs[k:k + BATCH])
            results[mode].append(time.perf_counter() - t)
    conn.execute("DROP TRIGGER IF EXISTS device_events_late_insert ON device_events")
    conn.execute(CREATE)
    pending = (conn.execute(q).fetchone()[0] - before,)
    clean(conn)
for mode, ts in results.items():
    print(mode, ["%.3f" % x for x in ts], "best %.3f s, %.1f us per event" % (min(ts), min(ts) / N * 1e6))
print("invalidations logged by these writes:", pending[0])
