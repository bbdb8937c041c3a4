"""Mosquitto's, Redis's and Kafka's settings, defined once for every deployment that runs them.

The local stack (`f2_platform/stack/services.py`) and the Compose deployment (`deploy/compose/`, written by
`scripts/render_service_configs.py` and checked by `tests/deploy/test_service_configs.py`) render their
configuration files from the definitions here. What differs between them is passed in: addresses, ports,
file paths, each deployment's accounts, and Kafka's SASL mechanism. Every limit and policy
(message size, in-flight window, queues, persistence, authentication, TLS, memory, replication) lives only
here, so the two copies can no longer drift apart.

Pure: no I/O, standard library only. `deploy/compose/bootstrap.py` imports it from a checkout that has
none of the platform's dependencies installed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Directive:
    """One setting of a configuration file; `why`, if given, is written above it as a comment."""

    name: str
    value: str | int | bool
    why: str = ""

    @property
    def text(self) -> str:
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return str(self.value)


def _comment(why: str) -> list[str]:
    return [f"# {line}" if line else "#" for line in why.splitlines()] if why else []


# --- Mosquitto ----------------------------------------------------------------------------------------------
# README, "Security": MQTT messages above 256 kB are refused by the broker.
MQTT_MESSAGE_SIZE_LIMIT: Final = 256 * 1024
# Room for a PUBLISH's fixed header, topic and properties on top of the largest payload allowed: F2 topics
# are under 100 bytes, so 64 KiB covers them and any properties many times over.
MQTT_PACKET_HEADROOM: Final = 64 * 1024

MOSQUITTO_BROKER: Final[tuple[Directive, ...]] = (
    Directive(
        "per_listener_settings",
        False,
        "Authentication and ACLs are global: one password file and one ACL file for both listeners. With\n"
        "per-listener settings, Mosquitto 2.0.12 and later (the Compose image runs 2.0.20) refuse every message\n"
        "for a persistent session whose client is disconnected (eclipse-mosquitto/mosquitto#2618: the ACL check\n"
        "finds no listener), so the bridge's session would lose what devices publish while it restarts.\n"
        "The listeners stay apart without them. The device listener takes the username from the client\n"
        "certificate's CN, which the platform CA issues only for a controller MAC (12 hex digits) and which\n"
        "is never an internal account's name (mosquitto_acl refuses such a name), so a device gets only the\n"
        "per-MAC patterns. The internal listener needs a password, and the password file holds internal\n"
        "accounts only.",
    ),
    Directive("allow_anonymous", False, "No anonymous access on any listener."),
    Directive("persistence", True),
    Directive(
        "autosave_interval",
        1,
        "Save the session store every second: a crash (SIGKILL, OOM) loses at most the messages acknowledged\n"
        "to their publishers in the last second that the bridge had not yet received. Saving after every pass\n"
        "of the event loop (autosave_on_changes true) makes that window one PUBLISH per connection, but each\n"
        "save rewrites the whole store: under load the broker spent its time saving and stopped acknowledging\n"
        "(f2 bench, bridge stage: 2,131 of 8,843 publishes unacknowledged; docs/guarantees.md, measured).",
    ),
    Directive("autosave_on_changes", False),
    Directive(
        "max_queued_messages",
        0,
        "The bridge's persistent session must hold everything queued while it is down (0 = no count limit);\n"
        "max_queued_bytes bounds the memory one session can take.",
    ),
    Directive("max_queued_bytes", 1024 * 1024 * 1024),
    Directive(
        "max_inflight_messages",
        1000,
        "Unacknowledged QoS 1 messages per client: the Receive Maximum announced to MQTT 5 publishers and the\n"
        "sending window towards MQTT 3.1.1 subscribers. MQTT 5 subscribers set their own window (the bridge:\n"
        "F2_BRIDGE_MAX_INFLIGHT, 1000).",
    ),
    Directive(
        "message_size_limit",
        MQTT_MESSAGE_SIZE_LIMIT,
        "Publishes whose payload exceeds 256 kB are refused (README, Security).",
    ),
    Directive(
        "max_packet_size",
        MQTT_MESSAGE_SIZE_LIMIT + MQTT_PACKET_HEADROOM,
        "A client sending a larger packet is disconnected before the broker buffers it (MQTT allows 256 MB);\n"
        "the headroom above the payload limit fits any F2 topic and properties.",
    ),
    Directive("log_dest", "stdout"),
    Directive("log_type", "error"),
    Directive("log_type", "warning"),
    Directive("log_type", "notice"),
    Directive("connection_messages", True),
)

# Options of the device listener besides its address and certificate files.
MOSQUITTO_DEVICE_LISTENER: Final[tuple[Directive, ...]] = (
    Directive("require_certificate", True),
    Directive("use_identity_as_username", True),
    Directive("tls_version", "tlsv1.2", "The oldest TLS version accepted."),
    Directive("max_connections", 10000),
)

# A controller (username = its certificate's CN = its MAC) writes only its own telemetry and status and
# reads only its own commands. Mosquitto never expands a pattern for a username holding + or #, so such a
# certificate gets no access at all.
MOSQUITTO_DEVICE_ACL: Final[tuple[str, ...]] = (
    "pattern write tele/f2-%u/#",
    "pattern write stat/f2-%u/#",
    "pattern read cmnd/f2-%u/#",
)

# The CNs the platform CA issues device certificates for (certs/authority.py): an internal account must
# never match, or a device certificate could carry its rights under the global ACL.
_DEVICE_USERNAME = re.compile(r"[0-9a-f]{12}")


@dataclass(frozen=True)
class Listener:
    port: int
    address: str | None = None  # None: every address of the host (a container's own network)

    @property
    def line(self) -> str:
        return f"listener {self.port}" + (f" {self.address}" if self.address else "")


@dataclass(frozen=True)
class MosquittoFiles:
    """Where a deployment keeps the broker's files."""

    data_dir: str
    password_file: str
    acl_file: str
    ca_cert: str
    server_cert: str
    server_key: str
    crl: str


def mosquitto_conf(files: MosquittoFiles, internal: Listener, device: Listener, header: str) -> str:
    """mosquitto.conf: the shared broker settings, then the internal (password) and device (mTLS) listeners."""
    lines = _comment(header)
    for directive in MOSQUITTO_BROKER:
        lines += [*_comment(directive.why), f"{directive.name} {directive.text}"]
    lines += [
        "# This deployment's files.",
        f"password_file {files.password_file}",
        f"acl_file {files.acl_file}",
        f"persistence_location {files.data_dir.rstrip('/')}/",
        "",
        "# Internal listener: a username and password from the password file (the bridge, tools).",
        internal.line,
        "protocol mqtt",
        "",
        "# Device listener: TLS only, a client certificate from the platform CA required, revoked ones",
        "# refused (CRL); the certificate's CN (the controller's MAC) is the username for the ACL.",
        device.line,
        "protocol mqtt",
        f"cafile {files.ca_cert}",
        f"certfile {files.server_cert}",
        f"keyfile {files.server_key}",
        f"crlfile {files.crl}",
    ]
    for directive in MOSQUITTO_DEVICE_LISTENER:
        lines += [*_comment(directive.why), f"{directive.name} {directive.text}"]
    return "\n".join(lines) + "\n"


def mosquitto_acl(accounts: Mapping[str, Sequence[str]], header: str) -> str:
    """The ACL file: each internal account's topic rules (e.g. "read tele/#"), then the devices' patterns."""
    lines = _comment(header)
    for user, rules in accounts.items():
        if _DEVICE_USERNAME.fullmatch(user) or not user or any(c in user for c in " +#/%"):
            raise ValueError(f"internal MQTT account {user!r} could be mistaken for a device (or is no name)")
        lines += ["", f"user {user}", *(f"topic {rule}" for rule in rules)]
    lines += [
        "",
        "# Devices (device listener): the username is the certificate's CN, the controller's MAC. A controller",
        "# publishes only under its own MAC and reads only its own commands. Mosquitto never expands a pattern",
        "# for a username containing + or #, so such a certificate gets no access at all.",
        *MOSQUITTO_DEVICE_ACL,
    ]
    return "\n".join(lines) + "\n"


# --- Redis ----------------------------------------------------------------------------------------------------
REDIS_SERVER: Final[tuple[Directive, ...]] = (
    Directive("protected-mode", "yes"),
    Directive(
        "save",
        '""',
        "The processors' topology cache, nothing durable (the registry in PostgreSQL is the truth; keys are\n"
        "versioned and expire): no snapshots, no append-only file. It starts empty after a restart.",
    ),
    Directive("appendonly", "no"),
    Directive("maxmemory", "256mb", "When memory runs out the least recently used keys give way."),
    Directive("maxmemory-policy", "allkeys-lru"),
)

# No anonymous access: every client authenticates as one of the deployment's ACL users.
REDIS_NO_DEFAULT_USER: Final = "user default off"
# The topology cache's users (the processor; Compose's Dagster): their own key space, plain reads and
# writes, and what a client may send while connecting (AUTH, HELLO, SELECT, CLIENT SETNAME, PING).
REDIS_CACHE_RIGHTS: Final = (
    "resetkeys ~f2:topology:* resetchannels -@all +get +set +del +mget +ping +hello +auth +select +client|setname"
)
# A health check's user: PING only.
REDIS_HEALTH_RIGHTS: Final = "resetkeys resetchannels -@all +ping"


def redis_acl_user(name: str, password: str, rights: str) -> str:
    """An ACL user line; the password is stored as its SHA-256 (Redis's `#<hex>` form), never in clear."""
    return f"user {name} on #{hashlib.sha256(password.encode()).hexdigest()} {rights}"


def redis_conf(bind: str, port: int, header: str, local: Iterable[str] = (), acl: Iterable[str] = ()) -> str:
    """redis.conf: address, `local` lines (e.g. `dir`), the shared settings, then `acl` (users or aclfile)."""
    lines = [*_comment(header), f"bind {bind}", f"port {port}", *local]
    for directive in REDIS_SERVER:
        lines += [*_comment(directive.why), f"{directive.name} {directive.text}"]
    lines += list(acl)
    return "\n".join(lines) + "\n"


# --- Kafka ------------------------------------------------------------------------------------------------------
# KRaft mode, every node both broker and controller (combined roles): one node, or a cluster of three whose
# three controllers form the metadata quorum. The replication settings follow from the number of nodes
# (kafka_replication below); everything else is the same for every deployment.
KAFKA_BROKER: Final[tuple[Directive, ...]] = (
    Directive(
        "auto.create.topics.enable",
        False,
        "Topics are created with their partitions and policies (f2 stack up, f2-init), never by a typo.",
    ),
    Directive(
        "message.max.bytes",
        4 * 1024 * 1024,
        "A record batch holds raw MQTT messages (each up to 256 kB) and their headers.",
    ),
    Directive(
        "unclean.leader.election.enable",
        False,
        "A replica that is not in sync never becomes leader: a partition waits for an in-sync one rather than\n"
        "lose what acks=all acknowledged.",
    ),
    Directive("offsets.topic.num.partitions", 10),
    Directive("transaction.state.log.num.partitions", 10),
    Directive(
        "group.initial.rebalance.delay.ms",
        0,
        "A consumer group's first member starts at once instead of waiting for others.",
    ),
    Directive("log.retention.hours", 168),
    Directive("log.segment.bytes", 256 * 1024 * 1024),
)

# The TLS side of a SASL_SSL client listener (the local stack's F2_STACK_KAFKA_TLS, as Kubernetes runs Kafka):
# the broker's key and certificate chain and the CA as PEM files; clients authenticate with SASL, not with a
# certificate.
KAFKA_TLS: Final[tuple[Directive, ...]] = (
    Directive("ssl.keystore.type", "PEM"),
    Directive("ssl.truststore.type", "PEM"),
    Directive("ssl.client.auth", "none", "Clients prove who they are with SASL/SCRAM over the encrypted channel."),
    Directive("ssl.enabled.protocols", "TLSv1.3,TLSv1.2", "The oldest TLS version accepted: 1.2, as Mosquitto."),
    Directive(
        "ssl.endpoint.identification.algorithm",
        "https",
        "Brokers check each other's certificate names (the inter-broker listener is the client listener).",
    ),
)


@dataclass(frozen=True)
class KafkaReplication:
    """How many copies of each partition a deployment keeps, and how many must have a write before acks=all
    acknowledges it."""

    replication_factor: int
    min_insync_replicas: int


def kafka_replication(nodes: int) -> KafkaReplication:
    """One node: one copy. Three or more: three copies, two of which must have every acknowledged write, so a
    node can fail (or be restarted) and producers go on while nothing acknowledged is lost."""
    if nodes == 1:
        return KafkaReplication(1, 1)
    if nodes >= 3:
        return KafkaReplication(3, 2)
    raise ValueError(
        f"a Kafka cluster of {nodes} nodes cannot both keep every acknowledged write on two nodes and survive "
        "the loss of one: run 1 node, or 3 or more"
    )


def kafka_replication_directives(replication: KafkaReplication) -> tuple[Directive, ...]:
    """The broker's replication policy: its default for topics and the same for its internal topics."""
    rf, isr = replication.replication_factor, replication.min_insync_replicas
    return (
        Directive(
            "default.replication.factor",
            rf,
            "Copies of each partition; topics the platform creates name theirs explicitly.",
        ),
        Directive(
            "min.insync.replicas",
            isr,
            "With acks=all a write is acknowledged once this many replicas have it (1 on one node; 2 in a\n"
            "cluster of three: one node may fail without losing anything acknowledged).",
        ),
        Directive(
            "offsets.topic.replication.factor",
            rf,
            "Consumer offsets, and the offsets the processor commits inside its transactions.",
        ),
        Directive(
            "transaction.state.log.replication.factor",
            rf,
            "The processor's transactions: their log is replicated like the data.",
        ),
        Directive("transaction.state.log.min.isr", isr),
        Directive(
            "share.coordinator.state.topic.replication.factor",
            rf,
            "Kafka 4's share groups keep their state in a topic too.",
        ),
        Directive("share.coordinator.state.topic.min.isr", isr),
    )


@dataclass(frozen=True)
class KafkaVoter:
    """A member of the KRaft controller quorum: its node id and controller listener."""

    node_id: int
    host: str
    port: int

    @property
    def text(self) -> str:
        return f"{self.node_id}@{self.host}:{self.port}"


@dataclass(frozen=True)
class KafkaTlsFiles:
    """Where a SASL_SSL broker finds its PEM files."""

    keystore: str  # its private key and certificate chain
    truststore: str  # the CA that signed every broker's certificate


@dataclass(frozen=True)
class KafkaNode:
    """Where a deployment's broker listens and keeps its data, and the cluster it belongs to."""

    client_bind: str  # host part of the client listener ("" = every address)
    client_port: int
    advertised_host: str
    controller_host: str  # the controller listener: loopback or the stack's host only
    controller_port: int
    sasl_mechanism: str
    log_dirs: str
    num_partitions: int  # default for topics created without a count
    node_id: int = 1
    # The controller quorum: every node of the cluster (combined roles). Empty: this node alone.
    quorum: tuple[KafkaVoter, ...] = ()
    tls: KafkaTlsFiles | None = None  # SASL_SSL instead of SASL_PLAINTEXT on the client listener

    @property
    def client_protocol(self) -> str:
        return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"

    @property
    def voters(self) -> tuple[KafkaVoter, ...]:
        return self.quorum or (KafkaVoter(self.node_id, self.controller_host, self.controller_port),)


def kafka_properties(node: KafkaNode) -> list[Directive]:
    """The broker's settings (server.properties names): the node's listeners, then the shared policy."""
    protocol = node.client_protocol
    voters = node.voters
    directives = [
        Directive("process.roles", "broker,controller"),
        Directive("node.id", node.node_id),
        Directive("controller.quorum.voters", ",".join(v.text for v in voters)),
        Directive(
            "listeners",
            f"{protocol}://{node.client_bind}:{node.client_port},"
            f"CONTROLLER://{node.controller_host}:{node.controller_port}",
            "Clients must authenticate (SASL); the controller listener speaks only the controller protocol.",
        ),
        Directive("advertised.listeners", f"{protocol}://{node.advertised_host}:{node.client_port}"),
        Directive("controller.listener.names", "CONTROLLER"),
        Directive("inter.broker.listener.name", protocol),
        Directive("listener.security.protocol.map", f"{protocol}:{protocol},CONTROLLER:PLAINTEXT"),
        Directive("sasl.enabled.mechanisms", node.sasl_mechanism),
        Directive("sasl.mechanism.inter.broker.protocol", node.sasl_mechanism),
        Directive("log.dirs", node.log_dirs),
        Directive("num.partitions", node.num_partitions),
    ]
    if node.tls is not None:
        directives += [
            *KAFKA_TLS,
            Directive("ssl.keystore.location", node.tls.keystore),
            Directive("ssl.truststore.location", node.tls.truststore),
        ]
    return [*directives, *KAFKA_BROKER, *kafka_replication_directives(kafka_replication(len(voters)))]


def server_properties(directives: Iterable[Directive], header: str = "") -> str:
    """A Java properties file (server.properties)."""
    lines = _comment(header)
    for directive in directives:
        lines += [*_comment(directive.why), f"{directive.name}={directive.text}"]
    return "\n".join(lines) + "\n"


def kafka_env_name(prop: str) -> str:
    """The apache/kafka image's variable for a broker property: KAFKA_ + the name upper-cased, with `.` as
    `_`, `_` as `__` and `-` as `___` (the image maps them back when it writes server.properties)."""
    return "KAFKA_" + prop.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def kafka_env_file(directives: Iterable[Directive], header: str) -> str:
    """A Compose env_file setting the apache/kafka image's broker properties."""
    lines = _comment(header)
    for directive in directives:
        lines += [*_comment(directive.why), f"{kafka_env_name(directive.name)}={directive.text}"]
    return "\n".join(lines) + "\n"


# --- The Compose deployment (deploy/compose/) ---------------------------------------------------------------
COMPOSE_MQTT_INTERNAL_PORT: Final = 1883
COMPOSE_MQTT_DEVICE_PORT: Final = 8883
COMPOSE_REDIS_PORT: Final = 6379
COMPOSE_KAFKA_PORT: Final = 9092
COMPOSE_KAFKA_CONTROLLER_PORT: Final = 9093
COMPOSE_KAFKA_PARTITIONS: Final = 6
COMPOSE_KAFKA_SASL_MECHANISM: Final = "PLAIN"
# The internal MQTT accounts of Compose: the bridge reads device telemetry and status, and $SYS for its
# health check. (Their passwords are in the password file bootstrap.py writes.)
COMPOSE_MQTT_ACCOUNTS: Final[Mapping[str, Sequence[str]]] = {
    "f2-bridge": ("read tele/#", "read stat/#", "read $SYS/broker/uptime"),
}
# Users of Compose's Redis besides the default one (bootstrap.py writes them, with their passwords, into the
# redis_users.acl secret): name -> rights.
COMPOSE_REDIS_USERS: Final[Mapping[str, str]] = {
    "f2-processor": REDIS_CACHE_RIGHTS,
    "f2-dagster": REDIS_CACHE_RIGHTS,  # the same key space (cache inspection and invalidation)
    "f2-health": REDIS_HEALTH_RIGHTS,
}

_GENERATED = "Generated from f2_platform/stack/service_config.py by scripts/render_service_configs.py: edit those."


def compose_configs() -> dict[str, str]:
    """The Compose deployment's configuration files, by path under deploy/compose/, with container paths."""
    mosquitto = mosquitto_conf(
        MosquittoFiles(
            data_dir="/mosquitto/data/",
            password_file="/run/secrets/mosquitto_passwd",
            acl_file="/mosquitto/config/acl",
            ca_cert="/run/secrets/f2_ca_cert",
            server_cert="/run/secrets/mqtt_server_cert",
            server_key="/run/secrets/mqtt_server_key",
            crl="/run/secrets/mqtt_crl",
        ),
        internal=Listener(COMPOSE_MQTT_INTERNAL_PORT),
        device=Listener(COMPOSE_MQTT_DEVICE_PORT),
        header=(
            f"Mosquitto for the Compose deployment.\n{_GENERATED}\n"
            f"Internal listener {COMPOSE_MQTT_INTERNAL_PORT}: on the Compose `internal` network only, not published.\n"
            f"Device listener {COMPOSE_MQTT_DEVICE_PORT}: published for the controllers.\n"
            "After `f2 certs revoke`, reload the CRL: docker compose kill -s HUP mosquitto"
        ),
    )
    acl = mosquitto_acl(
        COMPOSE_MQTT_ACCOUNTS,
        header=(
            f"Who may do what (the topics of docs/domain.md).\n{_GENERATED}\n"
            "Mosquitto checks a shared subscription against its topic filter, so $share/f2-bridge/tele/+/+/+/+ "
            "is\nallowed by `topic read tele/#`."
        ),
    )
    redis = redis_conf(
        "0.0.0.0",
        COMPOSE_REDIS_PORT,
        header=f"Redis for the Compose deployment.\n{_GENERATED}",
        acl=[
            "# Users and their rights live in a secret file (bootstrap.py writes it, with hashed passwords, from",
            "# COMPOSE_REDIS_USERS): no default user (no anonymous access); f2-processor and f2-dagster read and",
            "# write the topology cache's keys (f2:topology:*) only; f2-health may only PING.",
            "aclfile /run/secrets/redis_users.acl",
        ],
    )
    kafka = kafka_env_file(
        kafka_properties(
            KafkaNode(
                client_bind="",
                client_port=COMPOSE_KAFKA_PORT,
                advertised_host="kafka",
                # The controller listener is loopback-only: nothing outside the container reaches it.
                controller_host="127.0.0.1",
                controller_port=COMPOSE_KAFKA_CONTROLLER_PORT,
                sasl_mechanism=COMPOSE_KAFKA_SASL_MECHANISM,
                log_dirs="/var/lib/kafka/data",
                num_partitions=COMPOSE_KAFKA_PARTITIONS,
            )
        ),
        header=(
            "The Kafka broker's settings for the Compose deployment (env_file of the `kafka` service).\n"
            f"{_GENERATED}\n"
            "The apache/kafka image turns each KAFKA_<NAME> into the broker property <name>."
        ),
    )
    return {
        "mosquitto/mosquitto.conf": mosquitto,
        "mosquitto/acl": acl,
        "redis/redis.conf": redis,
        "kafka/broker.env": kafka,
    }


def compose_redis_users_acl(passwords: Mapping[str, str]) -> str:
    """The redis_users.acl secret of Compose: no default user, then each of COMPOSE_REDIS_USERS."""
    users = [redis_acl_user(name, passwords[name], rights) for name, rights in COMPOSE_REDIS_USERS.items()]
    return "\n".join([REDIS_NO_DEFAULT_USER, *users]) + "\n"
