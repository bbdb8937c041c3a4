"""Prometheus metrics of the daemons (docs/contracts.md: `f2_` prefix, `daemon` label, `_total` counters,
durations as histograms in seconds)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES_IN = Counter("f2_messages_in_total", "Records read from the daemon's input", ["daemon"], registry=REGISTRY)
MESSAGES_OUT = Counter(
    "f2_messages_out_total", "Records written durably to the daemon's output", ["daemon"], registry=REGISTRY
)
DEAD_LETTERED = Counter(
    "f2_dead_lettered_total",
    "Records sent to the dead-letter topic, by reason",
    ["daemon", "reason"],
    registry=REGISTRY,
)
IGNORED = Counter(
    "f2_ignored_total",
    "Records that carry no reading by design (reader credentials)",
    ["daemon", "kind"],
    registry=REGISTRY,
)
CREDENTIALS_REDACTED = Counter(
    "f2_credentials_redacted_total",
    "Reader payloads the bridge rewrote without their credential, by outcome (token, indicator, unparsed)",
    ["daemon", "outcome"],
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "f2_batch_size",
    "Records per batch",
    ["daemon"],
    buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 20000),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "f2_batch_duration_seconds",
    "Time to process and make one batch durable",
    ["daemon"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
CACHE_HITS = Counter("f2_cache_hits_total", "Topology cache hits, by layer", ["daemon", "layer"], registry=REGISTRY)
CACHE_MISSES = Counter(
    "f2_cache_misses_total", "Topology cache misses, by layer", ["daemon", "layer"], registry=REGISTRY
)
CONSUMER_LAG = Gauge(
    "f2_consumer_lag",
    "Records between the committed position and the end of each partition",
    ["daemon", "topic", "partition"],
    registry=REGISTRY,
)
ERRORS = Counter("f2_errors_total", "Failures that were retried, by kind", ["daemon", "kind"], registry=REGISTRY)
WRITE_FAILURES = Counter(
    "f2_sink_write_failures_total", "Database writes that failed and will be retried", ["daemon"], registry=REGISTRY
)
CONNECTED = Gauge(
    "f2_connected", "1 while the daemon is connected to a system, by system", ["daemon", "system"], registry=REGISTRY
)
UP = Gauge("f2_up", "1 while the daemon's run loop is running", ["daemon"], registry=REGISTRY)
LATENCY = Histogram(
    "f2_end_to_end_latency_seconds",
    "Device timestamp to database commit",
    ["daemon"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
EVENTS_OUT = Counter(
    "f2_events_out_total",
    "Events written durably, by kind (processor: to f2.events; sink: stored)",
    ["daemon", "kind"],
    registry=REGISTRY,
)
EVENTS_UNREGISTERED = Counter(
    "f2_events_unregistered_total",
    "Events of a component the registry does not know (kept, with null registry ids), by kind",
    ["daemon", "kind"],
    registry=REGISTRY,
)
CONTROLLER_LAST_SEEN = Gauge(
    "f2_controller_last_seen_timestamp_seconds",
    "When the processor last read a record of each controller (Unix seconds)",
    ["daemon", "controller"],
    registry=REGISTRY,
)
MQTT_REFUSED = Counter(
    "f2_mqtt_refused_total",
    "MQTT connections or subscriptions the broker refused for good (credentials, authorization, certificates), "
    "by reason; the bridge then exits naming the setting to fix",
    ["daemon", "reason"],
    registry=REGISTRY,
)
MQTT_SESSIONS_LOST = Counter(
    "f2_mqtt_sessions_lost_total",
    "Reconnects on which the MQTT broker had not kept the bridge's persistent session (session present false)",
    ["daemon"],
    registry=REGISTRY,
)
