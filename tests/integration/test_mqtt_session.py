"""The bridge's MQTT client against the real broker: refused logins, acknowledgement order, redelivery, a session
the broker did not keep.

Nothing here is simulated: the session talks to the stack's Mosquitto, and messages are published by paho.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import pytest

from streaming.errors import MqttRefusedError
from streaming.mqtt.session import MqttSession, SessionOptions, State
from streaming.mqtt.wire import Publish
from streaming.settings import ConnectionSettings
from tests.pipeline import end_mqtt_session
from tests.realtime import publish, session_present

TOPIC = "tele/f2-00000000fee1/c1/p1/sensor-1"


def options(conn: ConnectionSettings, client_id: str, password: str | None = None) -> SessionOptions:
    return SessionOptions(
        host=conn.mqtt_host,
        port=conn.mqtt_port,
        client_id=client_id,
        username=conn.mqtt_username,
        password=password if password is not None else conn.mqtt_password,
        keepalive_s=30,
        session_expiry_s=30,
        receive_maximum=100,
        topic_filters=("tele/f2-00000000fee1/#",),
    )


def pump(session: MqttSession, done: Callable[[list[Publish]], bool], timeout: float = 10.0) -> list[Publish]:
    """Drive the session until `done(received)` holds; everything received so far."""
    received: list[Publish] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received += session.poll(0.05)
        session.flush()
        if done(received):
            return received
    raise AssertionError(f"timed out; received {[p.payload for p in received]}")


def subscribed(session: MqttSession, caplog: pytest.LogCaptureFixture) -> None:
    pump(session, lambda _: any("subscribed to" in r.getMessage() for r in caplog.records))
    caplog.clear()


def reconnect_and_ack(
    conn: ConnectionSettings, client_id: str, expected: list[bytes], ack_connection: Callable[[MqttSession], int]
) -> None:
    """Resume the session: the broker must redeliver exactly `expected` (marked dup); ack them as told."""
    session = MqttSession(options(conn, client_id))
    try:
        again = pump(session, lambda r: len(r) >= len(expected))
        time.sleep(0.5)
        again += session.poll(0.2)
        assert [p.payload for p in again] == expected
        assert all(p.dup for p in again)
        for p in again:
            session.ack(ack_connection(session), p.packet_id)
        session.flush()
        time.sleep(0.5)  # the broker has processed the PUBACKs before the connection ends
    finally:
        session.close()


def test_a_refused_login_ends_with_an_error_naming_the_setting_and_is_not_retried(
    migrated: ConnectionSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="f2.mqtt")
    session = MqttSession(options(migrated, f"test-refused-{uuid.uuid4().hex[:8]}", password="not-the-password"))
    try:
        with pytest.raises(MqttRefusedError) as refused:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                session.poll(0.05)
        # Mosquitto answers a wrong password with Not authorized (0x87) or Bad User Name or Password (0x86).
        assert refused.value.reason in ("not-authorized", "bad-credentials"), refused.value
        assert "F2_MQTT_PASSWORD" in str(refused.value) and repr(migrated.mqtt_username) in str(refused.value)
        assert session.state is State.CLOSED
        deadline = time.monotonic() + 2.5  # past two backoff periods: no second attempt
        while time.monotonic() < deadline:
            assert session.poll(0.05) == []
    finally:
        session.close()
    refusals = [r for r in caplog.records if "refused the connection" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in caplog.records]


def test_only_acknowledged_messages_stay_gone_and_pubacks_keep_arrival_order(
    migrated: ConnectionSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="f2.mqtt")
    client_id = f"test-session-{uuid.uuid4().hex[:8]}"
    first = MqttSession(options(migrated, client_id))
    try:
        subscribed(first, caplog)
        publish(migrated, [(TOPIC, str(n).encode()) for n in range(6)])
        got = pump(first, lambda r: len(r) == 6)
        assert [p.payload for p in got] == [b"0", b"1", b"2", b"3", b"4", b"5"]
        # Records 0, 1, 2 and 4 are durable, 3 and 5 are not: PUBACKs go out in arrival order, so 4 waits
        # behind 3 and is not acknowledged either.
        for p in got:
            if p.payload in (b"0", b"1", b"2", b"4"):
                first.ack(first.connection, p.packet_id)
        first.flush()
        time.sleep(0.5)  # the broker has processed the PUBACKs before the connection ends
    finally:
        first.close()

    # The next connection gets 3, 4 and 5 again; its acks are given for the connection before it, and
    # an ack of an earlier connection is never sent: the one after gets them once more.
    reconnect_and_ack(migrated, client_id, [b"3", b"4", b"5"], ack_connection=lambda s: s.connection - 1)
    reconnect_and_ack(migrated, client_id, [b"3", b"4", b"5"], ack_connection=lambda s: s.connection)

    fourth = MqttSession(options(migrated, client_id))
    try:
        subscribed(fourth, caplog)
        time.sleep(1.0)
        assert fourth.poll(0.5) == []  # everything was acknowledged: nothing comes back
    finally:
        fourth.close()


def test_a_session_the_broker_discarded_is_warned_and_counted_on_the_reconnect(
    migrated: ConnectionSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="f2.mqtt")
    client_id = f"test-lost-{uuid.uuid4().hex[:8]}"
    lost: list[int] = []
    session = MqttSession(options(migrated, client_id), on_session_lost=lambda: lost.append(1))
    try:
        subscribed(session, caplog)
        assert session.sessions_lost == 0  # the first connect expects no session
        # Another client takes the client id over with clean start and session expiry 0: Mosquitto disconnects
        # this connection (Session taken over) and discards the session when the other one leaves.
        end_mqtt_session(
            {
                "F2_MQTT_USERNAME": migrated.mqtt_username or "",
                "F2_MQTT_PASSWORD": migrated.mqtt_password or "",
                "F2_MQTT_HOST": migrated.mqtt_host,
                "F2_MQTT_PORT": str(migrated.mqtt_port),
            },
            client_id,
        )
        pump(session, lambda _: session.connection == 2, timeout=15)
        assert session.sessions_lost == 1 and lost == [1]
        assert any("did not resume session" in r.getMessage() for r in caplog.records)
    finally:
        session.close()
    end_mqtt_session(
        {
            "F2_MQTT_USERNAME": migrated.mqtt_username or "",
            "F2_MQTT_PASSWORD": migrated.mqtt_password or "",
            "F2_MQTT_HOST": migrated.mqtt_host,
            "F2_MQTT_PORT": str(migrated.mqtt_port),
        },
        client_id,
    )


@pytest.mark.parametrize("end_session", [False, True])
def test_a_close_that_ends_the_session_leaves_none_on_the_broker(
    migrated: ConnectionSettings, caplog: pytest.LogCaptureFixture, end_session: bool
) -> None:
    caplog.set_level(logging.INFO, logger="f2.mqtt")
    client_id = f"test-end-{uuid.uuid4().hex[:8]}"
    session = MqttSession(options(migrated, client_id))
    try:
        subscribed(session, caplog)
    finally:
        session.close(end_session=end_session)
    # The session expiry of options() is 30 s: only a DISCONNECT that ended it leaves nothing to resume.
    assert session_present(migrated, client_id) is not end_session
