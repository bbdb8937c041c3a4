"""Alerts reach a real HTTP receiver and the log: a device that falls silent (the silence sensor, through
its cursor) and a failed blocking check; a webhook that is down never fails the caller."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest

from f2_platform.defs.quality.silence_sensor import device_silence_sensor, parse_cursor
from f2_platform.quality import alerts
from f2_platform.quality.settings import AlertSettings
from tests.quality import seed as s
from tests.quality.conftest import Receiver, copy_readings, delete_latest_values, register

pytestmark = pytest.mark.integration

MAC = "d0c0ffee0602"
FRESH, QUIET = "DQ Fresh", "DQ Quiet"


@pytest.fixture()
def live_devices(migrated, quality_env) -> Iterator[dict[str, int]]:
    """Two devices reporting up to now: one every 30 s, one that stopped 20 minutes ago."""
    now = datetime.now(UTC)
    with psycopg.connect(migrated.registry_dsn, autocommit=True) as reg:
        with reg.transaction():
            devices = register(
                reg, MAC, "DQ Live Controller", {FRESH: (1, 1, s.TEMPLATE.name), QUIET: (1, 2, s.TEMPLATE.name)}
            )
        temperature = reg.execute(
            'SELECT p.datapointid FROM "VtDevice".datapoints p JOIN "VtDevice".devicetemplates t '
            "ON t.devicetemplateid = p.devicetemplateid WHERE t.name = %s AND p.label = 'Temperature'",
            (s.TEMPLATE.name,),
        ).fetchone()
    assert temperature is not None
    readings = [
        (now - timedelta(seconds=30 * k + 5), devices[FRESH], temperature[0], 20.0 + k / 100) for k in range(40)
    ]
    readings += [
        (now - timedelta(minutes=20, seconds=30 * k), devices[QUIET], temperature[0], 20.0 + k / 100) for k in range(40)
    ]
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as ts:
        copy_readings(ts, readings)
    try:
        yield {**devices, "datapoint": temperature[0]}
    finally:
        ids = [devices[FRESH], devices[QUIET]]
        with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as ts:
            delete_latest_values(ts, ids)
        with psycopg.connect(migrated.registry_dsn, autocommit=True) as reg:
            reg.execute('DELETE FROM "VtDevice".devices WHERE macaddress = %s', (MAC,))
            reg.execute('DELETE FROM "VtDevice".devices WHERE deviceid = ANY(%s)', (ids,))


def evaluate(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    from f2_platform.defs.resources import resources

    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources())
    result = device_silence_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_a_device_falling_silent_alerts_once(
    live_devices, instance, migrated, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    quiet, fresh = str(live_devices[QUIET]), str(live_devices[FRESH])
    receiver.clear()
    with caplog.at_level(logging.WARNING, logger="f2_platform.quality.alerts"):
        first = evaluate(instance, None)
    silent = parse_cursor(first.cursor)
    assert quiet in silent and fresh not in silent
    (posted,) = receiver.of_kind(alerts.KIND_DEVICE_SILENT)
    listed = {str(d["device_id"]): d for d in posted["details"]["devices"]}
    assert quiet in listed and fresh not in listed
    assert listed[quiet]["device_name"] == QUIET and 20 * 60 <= listed[quiet]["silent_for_s"] < 30 * 60
    assert posted["severity"] == "WARN" and QUIET in posted["text"]
    assert any("device_silent" in r.getMessage() and QUIET in r.getMessage() for r in caplog.records)

    # Still silent: the cursor remembers it, nothing is posted again.
    receiver.clear()
    second = evaluate(instance, first.cursor)
    assert quiet in parse_cursor(second.cursor) and receiver.of_kind(alerts.KIND_DEVICE_SILENT) == []

    # It reports again: out of the cursor; silent again later, it would alert again.
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as ts:
        copy_readings(
            ts, [(datetime.now(UTC) - timedelta(seconds=2), live_devices[QUIET], live_devices["datapoint"], 21.0)]
        )
    third = evaluate(instance, second.cursor)
    assert quiet not in parse_cursor(third.cursor) and receiver.of_kind(alerts.KIND_DEVICE_SILENT) == []
    again = set(parse_cursor(third.cursor)) - set(parse_cursor(second.cursor))
    assert again == set()


def test_a_blocking_check_alert_is_logged_and_posted(
    receiver: Receiver, caplog: pytest.LogCaptureFixture, quality_env
) -> None:
    receiver.clear()
    alert = alerts.blocking_check_alert("readings_daily", "plausible_values", "a window", "3 failure(s)", [{"x": 1}])
    with caplog.at_level(logging.ERROR, logger="f2_platform.quality.alerts"):
        delivery = alerts.send(alert)
    assert delivery.posted and delivery.status == 204
    (body,) = receiver.of_kind(alerts.KIND_BLOCKING_CHECK)
    assert body["details"]["check"] == "plausible_values" and body["details"]["sample"] == [{"x": 1}]
    assert [r.levelname for r in caplog.records if "blocking_check_failed" in r.getMessage()] == ["ERROR"]


def test_a_webhook_that_is_down_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    settings = AlertSettings(webhook_url=f"http://127.0.0.1:{port}/alerts", attempts=2, timeout_s=2)
    with caplog.at_level(logging.WARNING, logger="f2_platform.quality.alerts"):
        delivery = alerts.send(alerts.silent_devices_alert([{"device_id": 1, "device_name": "x"}], 10), settings)
    assert not delivery.posted and delivery.error
    assert any("could not be delivered" in r.getMessage() for r in caplog.records)
