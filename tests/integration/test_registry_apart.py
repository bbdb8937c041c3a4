"""Registry and time series on two PostgreSQL servers, the registry in a schema of another name: `f2 db migrate`
prepares both and links the registry into the time-series database; the sample fleet enrolls (claiming codes
from the registry server), publishes two hours of history and lands exactly; `dbt build` reads the registry
where it is, through the link, and its marts carry the registry's names."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from f2_platform.defs.aggregates.maintenance import maintain_window
from f2_platform.defs.analytics.project import DBT_PROJECT_DIR, dbt_executable, profile_environment
from f2_platform.defs.resources import TimescaleResource
from f2_platform.quality.settings import DbtSettings
from f2_platform.settings import StackSettings
from f2_platform.stack.hermetic import make_state_dir
from f2_platform.stack.layout import StackLayout
from f2_platform.stack.ports import free_port
from f2_platform.stack.services import Postgres
from f2_platform.timeseries.aggregate_sql import DAILY, HOURLY
from simulator.catalog import SAMPLE_WIRING
from streaming.settings import ConnectionSettings
from tests.integration.test_migrations import with_database
from tests.pipeline import Pipeline, env_without_proxy
from tests.realtime import F2, ledger_readings, reconcile, simulate

pytestmark = pytest.mark.integration

SCHEMA = "Fleet_R"
# A past day (the simulator replays device time that has passed), in a time-series database of the test's own.
DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)


@dataclass(frozen=True)
class Apart:
    registry: Postgres  # the second server
    timeseries_dsn: str  # a database of its own on the session's server
    env: dict[str, str]


@pytest.fixture(scope="module")
def apart(connections: ConnectionSettings, stack_env: dict[str, str]) -> Iterator[Apart]:
    state = make_state_dir("f2-test-registry-server-")
    server = Postgres(StackLayout(StackSettings(state_dir=state, postgres_port=free_port())))
    StackLayout(server.settings).create()
    name = f"f2_apart_{uuid.uuid4().hex[:10]}"
    admin = with_database(connections.timeseries_dsn, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    timeseries = with_database(connections.timeseries_dsn, name)
    try:
        server.start()
        env = env_without_proxy(stack_env) | {
            "F2_REGISTRY_DSN": server.dsn(),
            "F2_REGISTRY_SCHEMA": SCHEMA,
            # The time-series server reads the registry as the processor does: a read-only role.
            "F2_REGISTRY_LINK_DSN": server.role_dsn("f2_processor"),
            "F2_PROCESSOR_REGISTRY_DSN": server.role_dsn("f2_processor"),
            "F2_TIMESERIES_DSN": timeseries,
            "F2_SINK_TIMESERIES_DSN": with_database(stack_env["F2_SINK_TIMESERIES_DSN"], name),
        }
        yield Apart(server, timeseries, env)
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def f2(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([F2, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def test_registry_on_another_server_runs_the_pipeline_and_dbt(apart: Apart, tmp_path: Path) -> None:
    migrated = f2(apart.env, "db", "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "grants applied to f2_processor in the registry's database" in migrated.stdout
    assert f'"{SCHEMA}".* are foreign tables' in migrated.stdout
    seeded = f2(apart.env, "db", "seed-sample")
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    with psycopg.connect(apart.registry.dsn(), autocommit=True) as conn:
        # A version no registry of the session reaches: the processors share the stack's Redis, whose topology
        # keys are per registry version and MAC (one registry per Redis in a deployment).
        conn.execute(
            sql.SQL("UPDATE {}.f2_registry_version SET version = %s").format(sql.Identifier(SCHEMA)),
            (10**12 + uuid.uuid4().int % 10**9,),
        )
        names = dict(
            conn.execute(
                sql.SQL("SELECT deviceid, devicename FROM {}.devices WHERE macaddress IS NULL").format(
                    sql.Identifier(SCHEMA)
                )
            ).fetchall()
        )
    with psycopg.connect(apart.timeseries_dsn) as conn:
        # The registry is nowhere in the time-series database but as the link's foreign tables.
        kinds = conn.execute(
            "SELECT DISTINCT relkind::text FROM pg_class WHERE relnamespace = %s::regnamespace", (f'"{SCHEMA}"',)
        ).fetchall()
    assert kinds == [("f",)]
    assert migrated.stdout.count("applied registry/") == 6 and "VtDevice" not in migrated.stdout

    # The pipeline; the simulator enrolls its devices with the registry server's claiming codes.
    ledger = tmp_path / "ledger.jsonl"
    env = apart.env | {"F2_SIMULATOR_DEVICES_DIR": str(tmp_path / "devices")}
    pipeline = Pipeline(env, tmp_path / "daemons")
    pipeline.start()
    try:
        sim = simulate(
            env,
            "--history", "2h", "--start", DAY.isoformat(), "--interval", "60", "--rate", "2000",
            "--ledger", str(ledger), "--reconcile", "--reconcile-timeout", "180",
        )  # fmt: skip
        output, _ = sim.communicate(timeout=400)
        assert sim.returncode == 0, output.decode(errors="replace")[-3000:]
    finally:
        pipeline.stop()
    report = reconcile(ledger, apart.timeseries_dsn)
    assert report.exact and report.expected > 500, report
    with psycopg.connect(apart.registry.dsn()) as conn:
        enrolled = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.f2_enrollments").format(sql.Identifier(SCHEMA))
        ).fetchone()
    assert enrolled == (4,)

    # The aggregates of the day, as the code location computes them, then dbt where the registry is linked.
    # maintain_window: a partition run's recomputation, on either edition (rollups, or continuous aggregates).
    window = {"start": DAY, "end": DAY + timedelta(days=1)}
    for spec in (HOURLY, DAILY):
        maintain_window(TimescaleResource(dsn=apart.timeseries_dsn), spec, window["start"], window["end"])
    dbt_env = {
        **os.environ,
        **profile_environment(apart.timeseries_dsn, DbtSettings(schema_name="f2_analytics"), SCHEMA),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    target = tmp_path / "target"
    build = subprocess.run(
        [
            dbt_executable(), "build", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", str(target), "--log-path", str(tmp_path / "logs"),
            "--vars", json.dumps({k: v.isoformat() for k, v in window.items()}),
        ],
        cwd=DBT_PROJECT_DIR, env=dbt_env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-2000:]
    results = json.loads((target / "run_results.json").read_text())["results"]
    assert results and all(r["status"] in ("success", "pass") for r in results), results

    with psycopg.connect(apart.timeseries_dsn) as conn:
        wired = conn.execute(
            "SELECT device_name, controller_mac, connector_number, pin_position FROM f2_analytics.stg_devices "
            "WHERE is_wired ORDER BY 2, 3, 4"
        ).fetchall()
        summary = conn.execute(
            "SELECT device_id, device_name, sum(readings) FROM f2_analytics.device_daily_summary WHERE day = %s "
            "GROUP BY 1, 2",
            (DAY,),
        ).fetchall()
    # Names and wiring as the registry server holds them (docs/domain.md §9), read through the link.
    assert wired == [
        (w.device, w.mac, w.connector, w.position)
        for w in sorted(SAMPLE_WIRING, key=lambda w: (w.mac, w.connector, w.position))
    ]
    per_device: dict[int, int] = {}
    for _, device_id, _ in ledger_readings(ledger):
        per_device[device_id] = per_device.get(device_id, 0) + 1
    assert {d: (n, int(c)) for d, n, c in summary} == {d: (names[d], c) for d, c in per_device.items()}
