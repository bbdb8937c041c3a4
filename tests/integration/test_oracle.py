"""The simulator is an oracle that shares no code with the platform's decoding: its ledger comes from its own
catalog and wiring, and it reads only the ids the registry assigned. A deliberately wrong registry row, which
the processor's topology follows, must therefore show in the reconciliation as exactly the mistake predicts,
instead of being made on both sides and passing."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from streaming.settings import ConnectionSettings
from tests.pipeline import Pipeline
from tests.realtime import ledger_readings, reconcile, simulate, stored_readings, wait_for

pytestmark = [pytest.mark.integration]

Key = tuple[str, int, int]  # (timestamp in us, device_id, datapoint_id)
Change = tuple[str, tuple[object, ...]]  # a statement and its parameters


def _registry_version(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute('SELECT version FROM "VtDevice".f2_registry_version').fetchone()
    assert row is not None
    return int(row[0])


def _processor_sees_registry(pipeline: Pipeline, dsn: str) -> None:
    version = _registry_version(dsn)
    processor = pipeline.get("processor-0")
    wait_for(
        lambda: int(processor.healthz()[1].get("registry_version", 0)) >= version,
        30,
        what=f"the processor to hear registry version {version}",
    )


def _simulate_sample_fleet(env: dict[str, str], ledger: Path, count: int = 300) -> None:
    # The sample fleet: `f2 simulate` registers nothing for it, so the wrong row stays while it runs.
    env = {**env, "F2_SIMULATOR_TRANSPORT": "internal"}
    proc = simulate(env, "--interval", "0.05", "--count", str(count), "--ledger", str(ledger), "--seed", "7")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out.decode()[-2000:]


def _stored_for(ledger: Path, conn: ConnectionSettings, expected: dict[Key, float]) -> dict[Key, float]:
    """Every row stored for the ledger's devices and time span, once as many as the ledger expects arrived."""
    from datetime import UTC, datetime

    stamps = sorted(int(k[0]) for k in expected)
    first = datetime.fromtimestamp(stamps[0] // 1_000_000, UTC).isoformat()
    last = datetime.fromtimestamp(stamps[-1] // 1_000_000 + 1, UTC).isoformat()
    devices = {k[1] for k in expected}
    stored: dict[Key, float] = {}

    def arrived() -> bool:
        nonlocal stored
        stored = stored_readings(conn.timeseries_dsn, devices, first, last)
        return len(stored) >= len(expected)

    wait_for(arrived, 120, interval=1.0, what="the simulated readings in decoded_data")
    return stored


def _one(dsn: str, sql: str, params: tuple[object, ...]) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None, (sql, params)
    return int(row[0])


@pytest.fixture()
def registry(migrated: ConnectionSettings) -> Iterator[Callable[[Change, Change], None]]:
    """Changes the registry as its owner: change(statement, its undo); every undo runs afterwards, the last
    first, so the sample registry keeps its rows and ids for later tests."""
    undo: list[Change] = []

    def change(statement: Change, revert: Change) -> None:
        with psycopg.connect(migrated.registry_dsn) as conn:
            conn.execute(*statement)
        undo.append(revert)

    try:
        yield change
    finally:
        with psycopg.connect(migrated.registry_dsn) as conn:
            for sql, params in reversed(undo):
                conn.execute(sql, params)


def test_wrong_decimals_in_the_registry_show_as_wrong_values(
    migrated: ConnectionSettings, stack_env: dict[str, str], pipeline: Pipeline, registry, tmp_path: Path
) -> None:
    temperature = _one(
        migrated.registry_dsn,
        'SELECT dp.datapointid FROM "VtDevice".datapoints dp JOIN "VtDevice".devicetemplates t '
        "ON t.devicetemplateid = dp.devicetemplateid WHERE t.name = 'ENV-S1' AND dp.label = 'Temperature'",
        (),
    )
    # ENV-S1's Temperature has two decimals (docs/domain.md); the registry now says one.
    decimals = 'UPDATE "VtDevice".datapoints SET decimals = %s WHERE datapointid = %s'
    registry((decimals, (1, temperature)), (decimals, (2, temperature)))
    _processor_sees_registry(pipeline, migrated.registry_dsn)
    ledger = tmp_path / "ledger.jsonl"
    _simulate_sample_fleet(stack_env, ledger)

    expected = ledger_readings(ledger)
    stored = _stored_for(ledger, migrated, expected)
    assert set(stored) == set(expected)
    wrong = {k for k in expected if not math.isclose(stored[k], expected[k], rel_tol=0, abs_tol=1e-9)}
    temperatures = {k for k in expected if k[2] == temperature and expected[k] != 0}
    assert temperatures, "the sample fleet sent no temperature"
    assert wrong == temperatures, "only the corrupted datapoint is wrong, in every reading"
    for k in wrong:  # the raw integer read with one decimal instead of two: ten times the value sent
        assert math.isclose(stored[k], expected[k] * 10, rel_tol=0, abs_tol=1e-9), (k, expected[k], stored[k])
    report = reconcile(ledger, migrated.timeseries_dsn)
    assert not report.exact and report.wrong_value and not report.missing and not report.unexpected


def test_swapped_wiring_in_the_registry_shows_as_readings_of_the_wrong_devices(
    migrated: ConnectionSettings, stack_env: dict[str, str], pipeline: Pipeline, registry, tmp_path: Path
) -> None:
    pin_sql = (
        'SELECT p.pinid FROM "VtDevice".pins p JOIN "VtDevice".connectors c ON c.connectorid = p.connectorid '
        'JOIN "VtDevice".devices ctl ON ctl.deviceid = c.controllerid '
        "WHERE ctl.macaddress = 'aabbccddee01' AND c.connectornumber = 1 AND p.position = %s"
    )
    device_sql = 'SELECT p.deviceid FROM "VtDevice".pins p WHERE p.pinid = %s'
    pin_1, pin_2 = _one(migrated.registry_dsn, pin_sql, (1,)), _one(migrated.registry_dsn, pin_sql, (2,))
    living_room = _one(migrated.registry_dsn, device_sql, (pin_1,))  # J1 position 1 (docs/domain.md)
    hallway = _one(migrated.registry_dsn, device_sql, (pin_2,))  # J1 position 2
    # The registry now has the two devices on each other's positions (one device per position at every step;
    # a pin's deviceid is NOT NULL, as in the reference, so the pins move through the free position 3).
    place = 'UPDATE "VtDevice".pins SET position = %s WHERE pinid = %s'
    registry((place, (3, pin_1)), (place, (1, pin_1)))
    registry((place, (1, pin_2)), (place, (2, pin_2)))
    registry((place, (2, pin_1)), (place, (3, pin_1)))
    _processor_sees_registry(pipeline, migrated.registry_dsn)
    ledger = tmp_path / "ledger.jsonl"
    _simulate_sample_fleet(stack_env, ledger)

    expected = ledger_readings(ledger)
    assert {k[1] for k in expected} >= {living_room, hallway}
    swap = {living_room: hallway, hallway: living_room}
    predicted = {(ts, swap.get(device, device), dp): v for (ts, device, dp), v in expected.items()}
    stored = _stored_for(ledger, migrated, expected)
    assert set(stored) == set(predicted)
    assert all(math.isclose(stored[k], v, rel_tol=0, abs_tol=1e-9) for k, v in predicted.items())
    report = reconcile(ledger, migrated.timeseries_dsn)
    assert not report.exact and report.missing and report.unexpected
