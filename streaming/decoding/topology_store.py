"""Reads controller topologies from the PostgreSQL device registry (schema "VtDevice", or F2_REGISTRY_SCHEMA)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from streaming.decoding.topology import ControllerTopology, Datapoint, WiredDevice
from streaming.errors import TransientError
from streaming.registry_schema import DEFAULT_SCHEMA, in_schema

log = logging.getLogger("f2.registry")

# Written against "VtDevice"; topology_sql() names the configured schema. The wired device's own
# devicetemplateid is read (not the template's), so a template that does not exist can be named.
TOPOLOGY_SQL = """
SELECT ctl.deviceid, c.connectornumber, p.position, wd.deviceid, wd.devicename, wd.devicetemplateid, t.name,
       t.frame_check, dp.datapointid, dp.label, dp.dataencoding, dp."offset", dp.length, dp.decimals,
       coalesce(dp.append, ''), dp.min_value, dp.max_value, t.expected_interval_s
FROM "VtDevice".devices ctl
LEFT JOIN "VtDevice".connectors c ON c.controllerid = ctl.deviceid
LEFT JOIN "VtDevice".pins p ON p.connectorid = c.connectorid AND p.deviceid IS NOT NULL
LEFT JOIN "VtDevice".devices wd ON wd.deviceid = p.deviceid
LEFT JOIN "VtDevice".devicetemplates t ON t.devicetemplateid = wd.devicetemplateid
LEFT JOIN "VtDevice".datapoints dp ON dp.devicetemplateid = t.devicetemplateid
WHERE ctl.macaddress = %s
ORDER BY c.connectornumber, p.position, dp."offset", dp.datapointid
"""

VERSION_SQL = 'SELECT version FROM "VtDevice".f2_registry_version'


def topology_sql(schema: str = DEFAULT_SCHEMA) -> str:
    return in_schema(TOPOLOGY_SQL, schema)


def version_sql(schema: str = DEFAULT_SCHEMA) -> str:
    return in_schema(VERSION_SQL, schema)


def build_topology(mac: str, rows: list[tuple]) -> ControllerTopology | None:
    """Pure: the rows of TOPOLOGY_SQL for one MAC -> its topology (None when the MAC is not a controller)."""
    if not rows:
        return None
    controller_id = int(rows[0][0])
    connectors: set[int] = set()
    devices: dict[tuple[int, int], tuple[tuple, list[Datapoint]]] = {}
    intervals: dict[tuple[int, int], int | None] = {}
    for row in rows:
        (
            _,
            connector,
            position,
            device_id,
            device_name,
            template_id,
            template_name,
            frame_check,
            dp_id,
            label,
            encoding,
            offset,
            length,
            decimals,
            unit,
            min_value,
            max_value,
            expected_interval_s,
        ) = row
        if connector is None:
            continue
        connectors.add(int(connector))
        if position is None or device_id is None:
            continue
        key = (int(connector), int(position))
        intervals[key] = None if expected_interval_s is None else int(expected_interval_s)
        _, points = devices.setdefault(
            key, ((int(device_id), str(device_name), template_id, template_name, frame_check), [])
        )
        if dp_id is not None:
            points.append(
                Datapoint(
                    int(dp_id),
                    str(label),
                    str(encoding),
                    int(offset),
                    int(length),
                    int(decimals),
                    str(unit).strip(),
                    min_value,
                    max_value,
                )
            )
    wired = {
        key: WiredDevice(
            device_id=head[0],
            device_name=head[1],
            template_id=int(head[2]) if head[2] is not None else 0,
            template_name=str(head[3] or ""),
            frame_check=str(head[4] or "none"),
            datapoints=tuple(points),
            registry_problem=_template_problem(head),
            expected_interval_s=intervals[key],
        )
        for key, (head, points) in devices.items()
    }
    return ControllerTopology(mac, controller_id, frozenset(connectors), wired)


def _template_problem(head: tuple) -> str | None:
    """The wired device's template is missing: (device id, name, its devicetemplateid, template name or None)."""
    device_id, device_name, template_id, template_name, _ = head
    if template_name is not None:
        return None
    device = f"device {device_name!r} (id {device_id})"
    if template_id is None:
        return f"{device} has no template (devices.devicetemplateid is NULL); set it to a devicetemplates row"
    return (
        f"{device} has template id {template_id}, which is not in the registry (devicetemplates); "
        "set devices.devicetemplateid to an existing template or add the template"
    )


class RegistryStore:
    """One registry connection, reconnected on demand; safe to call from one thread at a time."""

    def __init__(self, dsn: str, connect_timeout: float = 5.0, schema: str = DEFAULT_SCHEMA) -> None:
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self._topology_sql = topology_sql(schema)
        self._version_sql = version_sql(schema)
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.dsn, connect_timeout=int(self.connect_timeout), options="-c default_transaction_read_only=on"
            )
        return self._conn

    def load(self, mac: str) -> tuple[int, ControllerTopology | None]:
        """(registry version, topology) read in one snapshot."""
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    version_row = conn.execute(self._version_sql).fetchone()
                    rows = conn.execute(self._topology_sql, (mac,)).fetchall()
                return (int(version_row[0]) if version_row else 0), build_topology(mac, rows)
            except psycopg.OperationalError as exc:
                self.close()
                raise TransientError(f"registry database unavailable: {exc}") from exc

    def version(self) -> int:
        with self._lock:
            try:
                conn = self._connection()
                row = conn.execute(self._version_sql).fetchone()
                conn.commit()
                return int(row[0]) if row else 0
            except psycopg.OperationalError as exc:
                self.close()
                raise TransientError(f"registry database unavailable: {exc}") from exc

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


class RegistryListener(threading.Thread):
    """LISTENs on f2_registry_changed and reports each new registry version; reconnects after failures."""

    def __init__(
        self, dsn: str, on_version: Callable[[int], None], stop: threading.Event, schema: str = DEFAULT_SCHEMA
    ) -> None:
        super().__init__(name="registry-listener", daemon=True)
        self.dsn = dsn
        self._version_sql = version_sql(schema)
        self.on_version = on_version
        self.stop_event = stop
        self.connected = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute("LISTEN f2_registry_changed")
                    # Anything changed while we were not listening is caught by re-reading the version.
                    row = conn.execute(self._version_sql).fetchone()
                    if row:
                        self.on_version(int(row[0]))
                    self.connected.set()
                    while not self.stop_event.is_set():
                        for note in conn.notifies(timeout=1.0):
                            try:
                                self.on_version(int(note.payload))
                            except ValueError:
                                log.warning("ignoring registry notification with payload %r", note.payload)
            except psycopg.Error as exc:
                self.connected.clear()
                log.warning("registry listener lost its connection (%s); retrying", exc)
                self.stop_event.wait(2.0)
