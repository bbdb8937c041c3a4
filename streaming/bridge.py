"""`f2 bridge`: MQTT (QoS 1, persistent shared session) -> Kafka raw topic, nothing lost.

Each MQTT message is acknowledged to the broker only after Kafka confirmed its record (manual PUBACK), so a
crash at any point leaves every unconfirmed message queued in the broker's session for redelivery. The
producer is idempotent with acks=all and never gives up on a record; the record key is the controller MAC
so a controller's messages stay in order.

A reader's payload carries a credential (a QR/NFC token): on every topic `is_reader` accepts, the bridge
writes the payload's canonical credential-free form instead (streaming/credentials: a keyed fingerprint of the
token), with the header f2.redacted naming the key. The token never reaches Kafka, the logs or the metrics.

One thread does everything: each step reads what the socket holds, produces it, serves Kafka's delivery
reports and writes the PUBACKs they made due in one send (streaming/mqtt/session.py).

Durable counts: each produce batch (the messages of one socket read) also produces one small record to
f2.bridge.counts with the batch's messages per controller (streaming/bridge_counts.py), and a message's
PUBACK waits until its batch's counts record is confirmed too. So every acknowledged message is counted, and
a message redelivered after a crash is counted again, exactly like its duplicate raw record.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import partial

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streaming.bridge_counts import encode_counts
from streaming.credentials import OUTCOMES, CredentialKey, CredentialKeyError, redact_credentials
from streaming.errors import ConfigurationError, MqttRefusedError
from streaming.kafka import topics
from streaming.mqtt.session import MqttSession, SessionOptions
from streaming.mqtt.tls import client_context
from streaming.mqtt.topic import is_reader, mac_from_topic
from streaming.mqtt.wire import Publish
from streaming.runtime.metrics import (
    CONNECTED,
    CREDENTIALS_REDACTED,
    ERRORS,
    MESSAGES_IN,
    MESSAGES_OUT,
    MQTT_REFUSED,
    MQTT_SESSIONS_LOST,
)
from streaming.runtime.supervisor import restart_worker
from streaming.settings import BridgeSettings, ConnectionSettings, CredentialSettings

log = logging.getLogger("f2.bridge")
DAEMON = "bridge"
SUBSCRIPTIONS = ("tele/+/+/+/+", "stat/+/+/+/+")
# Distinct topics are bounded by the fleet; the cap only bounds what a flood of odd topics can hold.
_MAX_CACHED_KEYS = 100_000
_KAFKA_CHECK_S = 15.0
_ALL_COUNTED = 1 << 62
# sysexits.h EX_CONFIG: the worker cannot run with these settings (the supervisor does not restart it).
EXIT_CONFIG = 78


def shared(topic_filter: str) -> str:
    return f"$share/{topics.MQTT_SHARE_GROUP}/{topic_filter}"


def rfc3339_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def producer_config(conn: ConnectionSettings, settings: BridgeSettings) -> dict[str, object]:
    return {
        **conn.kafka_config(),
        "enable.idempotence": True,
        "acks": "all",
        # Never expire a record: while Kafka is away the bridge holds it and the broker holds the rest.
        "message.timeout.ms": 0,
        "linger.ms": settings.linger_ms,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 200000,
        "client.id": settings.client_id,
    }


def session_options(conn: ConnectionSettings, settings: BridgeSettings) -> SessionOptions:
    """ConfigurationError when a TLS file is missing or unusable."""
    tls = client_context(conn.ca_cert, conn.mqtt_tls_cert, conn.mqtt_tls_key) if conn.mqtt_tls else None
    return SessionOptions(
        host=conn.mqtt_host,
        port=conn.mqtt_tls_port if conn.mqtt_tls else conn.mqtt_port,
        client_id=settings.client_id,
        username=conn.mqtt_username,
        password=conn.mqtt_password if conn.mqtt_username else None,
        keepalive_s=settings.keepalive_s,
        session_expiry_s=settings.session_expiry_s,
        receive_maximum=settings.max_inflight,
        topic_filters=tuple(shared(f) for f in SUBSCRIPTIONS),
        qos=1,
        tls=tls,
        maximum_packet_size=settings.max_packet_size,
        reconnect_max_s=settings.reconnect_max_s,
    )


class Bridge:
    name = DAEMON

    def __init__(self, conn: ConnectionSettings, settings: BridgeSettings, credential_key: CredentialKey) -> None:
        self.conn = conn
        self.settings = settings
        self.credential_key = credential_key
        self._redacted_header = credential_key.key_id.encode()
        self._redacted = {outcome: CREDENTIALS_REDACTED.labels(DAEMON, outcome) for outcome in OUTCOMES}
        self.producer: Producer | None = None
        self.session: MqttSession | None = None
        self._closing = False
        self._in = MESSAGES_IN.labels(DAEMON)
        self._out = MESSAGES_OUT.labels(DAEMON)
        self._mqtt_up = CONNECTED.labels(DAEMON, "mqtt")
        self._kafka_up = CONNECTED.labels(DAEMON, "kafka")
        self._last_kafka_error: str | None = None
        self._kafka_confirmed_at = 0.0  # last delivery report or connectivity check that proved Kafka up
        self._progress_at = time.monotonic()  # last time Kafka confirmed a record or none was outstanding
        # MQTT topic -> (Kafka key, whether the topic may carry reader credentials), computed once per topic.
        self._routes: dict[bytes, tuple[str | None, bool]] = {}
        # Delivery callbacks of the current MQTT connection, one per packet id, made once and reused.
        self._callbacks: dict[int, partial[None]] = {}
        self._callbacks_connection = -1
        self._delivered = 0  # since the last step; counted into the metrics in bulk
        self._failed: list[tuple[Message, int, int]] = []  # (record, connection, packet id) to produce again
        # Messages read but not yet produced because the producer's queue was full, with their receive time
        # and connection; while any are here the socket is not read (the broker holds the rest).
        self._backlog: list[Publish] = []
        self._backlog_meta = (b"", 0)
        # Durable counts: produce batches are numbered; a delivered message is acknowledged once every
        # batch up to its own has its counts record confirmed (batches below _counted_below).
        self._counts_key = settings.client_id.encode()
        self._batch = 0
        self._batch_of: dict[int, int] = {}  # packet id -> batch of its message (packet ids are per flight)
        self._uncounted: dict[int, bytes] = {}  # batch -> its counts record, until Kafka confirms it
        self._counts_to_send: list[int] = []  # batches whose counts record is still to be produced (again)
        self._counted_below = _ALL_COUNTED
        # batch -> (connection, packet id) of its messages delivered before its counts record was confirmed. By
        # batch, so a confirmation acknowledges whole batches: scanning every waiting message at each of them
        # cost O(messages in flight) per batch and, at full load, starved the loop (bench, bridge stage).
        self._deferred: dict[int, list[tuple[int, int]]] = {}

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self, stack: ExitStack) -> None:
        self.producer = Producer({**producer_config(self.conn, self.settings), "error_cb": self._on_kafka_error})
        stack.callback(self._close_producer)
        self._require_counts_topic()
        self.session = MqttSession(
            session_options(self.conn, self.settings),
            on_connection=self._mqtt_up.set,
            on_session_lost=MQTT_SESSIONS_LOST.labels(DAEMON).inc,
        )
        self._ack = self.session.ack
        stack.callback(self.session.close)

    def step(self) -> None:
        producer, session = self.producer, self.session
        assert producer is not None and session is not None
        if self._counts_to_send:
            self._send_counts()
        if self._failed:
            self._produce_failed()
        if self._backlog:
            self._produce_backlog()
        reading = not self._backlog
        waiting_for_kafka = len(producer) > 0
        try:
            publishes = session.poll(0.0 if waiting_for_kafka or not reading else 0.1, read=reading)
        except MqttRefusedError as exc:
            MQTT_REFUSED.labels(DAEMON, exc.reason).inc()
            raise
        if publishes:
            self._in.inc(len(publishes))
            self._produce(publishes, rfc3339_now().encode(), session.connection)
        elif waiting_for_kafka:
            # Nothing to read: wait for delivery reports instead, as they make PUBACKs due.
            producer.poll(0.005)
        producer.poll(0)
        session.flush()
        self._count_delivered()

    def drain(self) -> None:
        """Stop reading (what arrives stays queued in the broker's session), get what was read into Kafka,
        acknowledge it, disconnect."""
        self._closing = True
        producer, session = self.producer, self.session
        assert producer is not None and session is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._counts_to_send:
                self._send_counts()
            if self._failed:
                self._produce_failed()
            if self._backlog:
                self._produce_backlog()
            if not (len(producer) or self._failed or self._backlog or self._counts_to_send):
                break
            producer.poll(0.1)
            session.flush()
            session.poll(0.0, read=False)  # keeps the connection alive while Kafka is slow
        self._count_delivered()
        if len(producer) or self._backlog:
            log.warning(
                "%d records not confirmed by Kafka at shutdown; the broker will redeliver them",
                len(producer) + len(self._backlog),
            )
        session.close(end_session=self.settings.end_session_on_exit)

    def health(self) -> tuple[bool, dict[str, object]]:
        ok = self.session is not None and self.session.connected
        return ok, {
            "mqtt_connected": ok,
            "last_kafka_error": self._last_kafka_error,
            "kafka_queue": len(self.producer) if self.producer else None,
        }

    def _require_counts_topic(self) -> None:
        """Without f2.bridge.counts no PUBACK would ever be sent (each waits for its batch's counts record) and
        brokers never create topics by themselves: refuse to run, naming the fix. A Kafka that does not answer
        yet is waited for as always."""
        assert self.producer is not None
        try:
            present = self.producer.list_topics(timeout=10).topics
        except KafkaException:
            return
        if topics.RAW in present and topics.BRIDGE_COUNTS not in present:
            raise ConfigurationError(
                f"Kafka has {topics.RAW} but not {topics.BRIDGE_COUNTS}, where the bridge records what it "
                "received before acknowledging it: create the platform's missing topics (f2 stack up, or f2-init)"
            )

    def _close_producer(self) -> None:
        if self.producer is not None:
            self.producer.flush(10)

    # --- Kafka ---------------------------------------------------------------------------------------------
    def _produce(self, publishes: list[Publish], received_at: bytes, connection: int) -> None:
        """Produce every message; on a full queue keep the rest in the backlog (read no more meanwhile)."""
        assert self.producer is not None
        produce = self.producer.produce
        routes = self._routes
        callbacks = self._callbacks
        if self._callbacks_connection != connection:
            callbacks.clear()
            self._callbacks_connection = connection
        h_topic, h_received, raw = topics.H_MQTT_TOPIC, topics.H_RECEIVED_AT, topics.RAW
        self._batch += 1
        batch, batch_of = self._batch, self._batch_of
        counts: dict[str | None, int] = {}
        for i, msg in enumerate(publishes):
            topic = msg.topic
            try:
                key, reader = routes[topic]
            except KeyError:
                key, reader = self._route_of(topic)
            on_delivery = callbacks.get(msg.packet_id)
            if on_delivery is None:
                on_delivery = callbacks[msg.packet_id] = partial(self._on_delivery, connection, msg.packet_id)
            try:
                if reader:
                    self._produce_redacted(msg, key, received_at, on_delivery)
                else:
                    produce(
                        raw,
                        value=msg.payload,
                        key=key,
                        headers=[(h_topic, topic), (h_received, received_at)],
                        on_delivery=on_delivery,
                    )
            except BufferError:
                # Kafka is slow or away: hold the rest and stop reading the socket until there is room.
                self._backlog = publishes[i:]
                self._backlog_meta = (received_at, connection)
                break
            counts[key] = counts.get(key, 0) + 1
            batch_of[msg.packet_id] = batch
        if counts:
            # Delivery reports are served by poll() only, after this: no message of the batch can be
            # acknowledged before its counts record is outstanding.
            if not self._uncounted:
                self._counted_below = batch
            self._uncounted[batch] = encode_counts(self.settings.client_id, received_at, counts)
            self._counts_to_send.append(batch)
            self._send_counts()

    def _send_counts(self) -> None:
        assert self.producer is not None
        pending, self._counts_to_send = self._counts_to_send, []
        for n, batch in enumerate(pending):
            try:
                self.producer.produce(
                    topics.BRIDGE_COUNTS,
                    value=self._uncounted[batch],
                    key=self._counts_key,
                    on_delivery=partial(self._on_counted, batch),
                )
            except BufferError:
                self._counts_to_send = pending[n:]
                return

    def _on_counted(self, batch: int, err: KafkaError | None, record: Message) -> None:
        if err is not None:
            self._last_kafka_error = str(err)
            ERRORS.labels(DAEMON, "kafka-delivery").inc()
            log.warning("Kafka delivery of a counts record failed (%s); retrying", err)
            self._counts_to_send.append(batch)
            return
        uncounted = self._uncounted
        del uncounted[batch]
        # Batches enter _uncounted in increasing order and only leave it: its first key is its smallest.
        self._counted_below = below = next(iter(uncounted)) if uncounted else _ALL_COUNTED
        deferred = self._deferred
        if deferred:
            ack = self._ack
            for ready in [b for b in deferred if b < below]:
                for connection, packet_id in deferred.pop(ready):
                    ack(connection, packet_id)

    def _produce_redacted(self, msg: Publish, key: str | None, received_at: bytes, on_delivery: partial[None]) -> None:
        """A reader's message: its payload's credential-free form, never the payload (BufferError as produce)."""
        assert self.producer is not None
        redacted = redact_credentials(msg.payload, self.credential_key)
        self.producer.produce(
            topics.RAW,
            value=redacted.value,
            key=key,
            headers=[
                (topics.H_MQTT_TOPIC, msg.topic),
                (topics.H_RECEIVED_AT, received_at),
                (topics.H_REDACTED, self._redacted_header),
            ],
            on_delivery=on_delivery,
        )
        self._redacted[redacted.outcome].inc()

    def _route_of(self, topic: bytes) -> tuple[str | None, bool]:
        if len(self._routes) >= _MAX_CACHED_KEYS:
            self._routes.clear()
        text = topic.decode("utf-8", "replace")
        route = self._routes[topic] = (mac_from_topic(text), is_reader(text))
        return route

    def _produce_backlog(self) -> None:
        backlog, self._backlog = self._backlog, []
        self._produce(backlog, *self._backlog_meta)
        if self._backlog:
            assert self.producer is not None
            self.producer.poll(0.05)

    def _produce_failed(self) -> None:
        assert self.producer is not None
        failed, self._failed = self._failed, []
        for n, (record, connection, packet_id) in enumerate(failed):
            try:
                self.producer.produce(
                    topics.RAW,
                    value=record.value(),
                    key=record.key(),
                    headers=record.headers(),
                    on_delivery=partial(self._on_delivery, connection, packet_id),
                )
            except BufferError:
                self._failed = failed[n:]
                self.producer.poll(0.05)
                return

    def _on_delivery(self, connection: int, packet_id: int, err: KafkaError | None, record: Message) -> None:
        if err is not None:
            # The record is not in Kafka: produce it again; the MQTT message stays unacknowledged meanwhile.
            self._last_kafka_error = str(err)
            self._kafka_up.set(0)
            ERRORS.labels(DAEMON, "kafka-delivery").inc()
            log.warning("Kafka delivery failed (%s); retrying", err)
            self._failed.append((record, connection, packet_id))
            return
        self._delivered += 1
        if packet_id:
            batch = self._batch_of.get(packet_id, 0)
            if batch < self._counted_below:
                self._ack(connection, packet_id)
            else:
                waiting = self._deferred.get(batch)
                if waiting is None:
                    self._deferred[batch] = [(connection, packet_id)]
                else:
                    waiting.append((connection, packet_id))

    def _count_delivered(self) -> None:
        now = time.monotonic()
        if self._delivered:
            self._out.inc(self._delivered)
            self._delivered = 0
            self._last_kafka_error = None
            self._kafka_up.set(1)
            self._kafka_confirmed_at = self._progress_at = now
            return
        assert self.producer is not None
        if not (len(self.producer) or self._failed or self._backlog):
            self._progress_at = now
        elif now - self._progress_at > self.settings.kafka_stall_s and not self._closing:
            restart_worker(
                f"Kafka confirmed none of {len(self.producer)} outstanding records for {now - self._progress_at:.0f} s"
            )
        if now - self._kafka_confirmed_at > _KAFKA_CHECK_S and not self._closing:
            self._check_kafka(now)

    def _check_kafka(self, now: float) -> None:
        """Keeps f2_connected{system="kafka"} true to life while no records flow."""
        assert self.producer is not None
        self._kafka_confirmed_at = now
        try:
            self.producer.list_topics(topics.RAW, timeout=2)
            self._kafka_up.set(1)
        except KafkaException:
            self._kafka_up.set(0)

    def _on_kafka_error(self, err: KafkaError) -> None:
        # Broker-wide trouble (all brokers down, authentication failed) shows in the gauge at once.
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION, KafkaError._TRANSPORT):
            self._kafka_up.set(0)
        log.warning("Kafka: %s", err)


def main() -> int:
    from streaming.runtime.runloop import configure_logging, run

    configure_logging(DAEMON)
    settings = BridgeSettings()
    try:
        credential_key = CredentialSettings().current_key()
    except CredentialKeyError as exc:
        log.error("cannot start: %s", exc)
        return EXIT_CONFIG
    try:
        return run(Bridge(ConnectionSettings(), settings, credential_key), settings.metrics_port)
    except ConfigurationError as exc:
        # A refusal retrying cannot cure: exit (the supervisor does not restart EXIT_CONFIG) naming the fix.
        log.error("cannot run: %s", exc)
        return EXIT_CONFIG


if __name__ == "__main__":
    raise SystemExit(main())
