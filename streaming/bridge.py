"""`f2 bridge`: MQTT (QoS 1, persistent shared session) -> Kafka raw topic, nothing lost.

Each MQTT message is acknowledged to the broker only after Kafka confirmed the record (paho manual ack), so a
crash at any point leaves every unconfirmed message queued in the broker's session for redelivery. The
producer is idempotent with acks=all and never gives up on a record; the record key is the controller MAC
so a controller's messages stay in order.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from f2_platform.settings import ConnectionSettings
from streaming import topics
from streaming.kafka_records import Headers
from streaming.metrics import CONNECTED, ERRORS, MESSAGES_IN, MESSAGES_OUT
from streaming.mqtt_topic import mac_from_topic
from streaming.settings import BridgeSettings

log = logging.getLogger("f2.bridge")
DAEMON = "bridge"
SUBSCRIPTIONS = ("tele/+/+/+/+", "stat/+/+/+/+")


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


class Bridge:
    name = DAEMON

    def __init__(self, conn: ConnectionSettings, settings: BridgeSettings) -> None:
        self.conn = conn
        self.settings = settings
        self.producer: Producer | None = None
        self.client: mqtt.Client | None = None
        self._mqtt_connected = threading.Event()
        self._closing = threading.Event()
        self._in = MESSAGES_IN.labels(DAEMON)
        self._out = MESSAGES_OUT.labels(DAEMON)
        self._last_kafka_error: str | None = None
        self._kafka_up = CONNECTED.labels(DAEMON, "kafka")
        self._kafka_checked = 0.0

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self, stack: ExitStack) -> None:
        self.producer = Producer({**producer_config(self.conn, self.settings), "error_cb": self._on_kafka_error})
        stack.callback(self._close_producer)
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if self.conn.mqtt_username:
            client.username_pw_set(self.conn.mqtt_username, self.conn.mqtt_password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        props.ReceiveMaximum = self.settings.max_inflight
        # clean_start=False resumes the session and its queued, unacknowledged messages after a restart.
        client.connect_async(self.conn.mqtt_host, self.conn.mqtt_port, keepalive=self.settings.keepalive_s,
                             clean_start=False, properties=props)
        client.loop_start()
        self.client = client
        stack.callback(self._close_mqtt)

    def _on_kafka_error(self, err: KafkaError) -> None:
        # Broker-wide trouble (all brokers down, authentication failed) shows in the gauge at once.
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION, KafkaError._TRANSPORT):
            self._kafka_up.set(0)
        log.warning("Kafka: %s", err)

    def step(self) -> None:
        assert self.producer is not None
        self.producer.poll(0.1)
        if time.monotonic() - self._kafka_checked > 15:
            self._check_kafka()

    def _check_kafka(self) -> None:
        """Keeps f2_connected{system="kafka"} true to life while no records flow."""
        assert self.producer is not None
        self._kafka_checked = time.monotonic()
        try:
            self.producer.list_topics(topics.RAW, timeout=2)
            self._kafka_up.set(1)
        except KafkaException:
            self._kafka_up.set(0)

    def drain(self) -> None:
        # Stop taking messages; what arrives now stays unacknowledged in the broker's session.
        self._closing.set()
        assert self.producer is not None
        remaining = self.producer.flush(30)
        if remaining:
            log.warning("%d records not confirmed by Kafka at shutdown; the broker will redeliver them", remaining)
        time.sleep(0.2)  # let the network thread send the last PUBACKs

    def health(self) -> tuple[bool, dict[str, object]]:
        ok = self._mqtt_connected.is_set()
        return ok, {"mqtt_connected": ok, "last_kafka_error": self._last_kafka_error,
                    "kafka_queue": len(self.producer) if self.producer else None}

    def _close_mqtt(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def _close_producer(self) -> None:
        if self.producer is not None:
            self.producer.flush(10)

    # --- MQTT callbacks (network thread) ----------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason: mqtt.ReasonCode, properties: Properties | None) -> None:
        if reason.is_failure:
            log.error("MQTT connection refused: %s", reason)
            return
        log.info("connected to MQTT %s:%d (session present: %s)", self.conn.mqtt_host, self.conn.mqtt_port,
                 flags.session_present)
        # Subscribing on every connect also repairs a session the broker lost.
        client.subscribe([(shared(f), SubscribeOptions(qos=1)) for f in SUBSCRIPTIONS])
        self._mqtt_connected.set()
        CONNECTED.labels(DAEMON, "mqtt").set(1)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason: mqtt.ReasonCode, properties: Properties | None) -> None:
        self._mqtt_connected.clear()
        CONNECTED.labels(DAEMON, "mqtt").set(0)
        if not self._closing.is_set():
            log.warning("MQTT disconnected (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if self._closing.is_set():
            return
        self._in.inc()
        topic = msg.topic
        key = mac_from_topic(topic)
        headers: Headers = [(topics.H_MQTT_TOPIC, topic.encode()), (topics.H_RECEIVED_AT, rfc3339_now().encode())]
        self._produce(key, msg.payload, headers, msg.mid, msg.qos)

    def _produce(self, key: str | None, value: bytes, headers: Headers, mid: int, qos: int) -> None:
        assert self.producer is not None

        def on_delivery(err: KafkaError | None, record: Message) -> None:
            if err is not None:
                # The record is not in Kafka: send it again; the MQTT message stays unacknowledged meanwhile.
                self._last_kafka_error = str(err)
                self._kafka_up.set(0)
                ERRORS.labels(DAEMON, "kafka-delivery").inc()
                log.warning("Kafka delivery failed (%s); retrying", err)
                self._produce(key, value, headers, mid, qos)
                return
            self._last_kafka_error = None
            self._kafka_up.set(1)
            self._out.inc()
            if qos > 0 and self.client is not None:
                self.client.ack(mid, qos)

        while True:
            try:
                self.producer.produce(topics.RAW, value=value, key=key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                # Kafka is slow or away: block this MQTT message (and so the broker's flow) until there is room.
                self.producer.poll(0.05)


def main() -> int:
    from f2_platform.connections import resolve_connections
    from streaming.runloop import configure_logging, run

    configure_logging(DAEMON)
    settings = BridgeSettings()
    return run(Bridge(resolve_connections(), settings), settings.metrics_port)


if __name__ == "__main__":
    raise SystemExit(main())
