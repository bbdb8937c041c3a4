"""The local stack's Kafka: one KRaft node, or a cluster of three (`F2_STACK_KAFKA_BROKERS=3`).

Every node is both broker and controller (combined roles): three JVMs of 512 MB instead of six, on a machine of
two cores, and the three controllers form the metadata quorum. The replication policy follows from the number
of nodes (service_config.kafka_replication): one copy on one node; three copies and min.insync.replicas 2 in
the cluster, for the platform's topics and for Kafka's own (consumer offsets, transaction state).

Node n listens for clients on F2_STACK_KAFKA_PORT + 2(n-1) and for its quorum on
F2_STACK_KAFKA_CONTROLLER_PORT + 2(n-1), and keeps its data in `kafka-<n>/` (one node: `kafka/`, as before
clusters existed). With F2_STACK_KAFKA_TLS the client listener, which the brokers also use among themselves,
speaks SASL_SSL with the broker certificate of the stack's PKI (the one Mosquitto's device listener shows).

A state folder remembers the shape its Kafka was set up with (`kafka.json`): later commands (`f2 stack down`,
`status`, `env`) find the same nodes without the settings, and a folder formatted for one node is never
started as a cluster (or the other way round).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from f2_platform.errors import ProvisioningError, StackError
from f2_platform.stack import ports
from f2_platform.stack.layout import StackLayout
from f2_platform.stack.service_config import (
    Directive,
    KafkaNode,
    KafkaReplication,
    KafkaTlsFiles,
    KafkaVoter,
    kafka_properties,
    kafka_replication,
    server_properties,
)
from f2_platform.stack.services import Service, ServiceStatus, _tail
from streaming.runtime import process

if TYPE_CHECKING:
    from certs.authority import CertificateAuthority

KAFKA_ADMIN_USER = "f2-admin"
KAFKA_CLIENT_USER = "f2-platform"
KAFKA_SASL_MECHANISM = "SCRAM-SHA-256"
SHAPE_FILE = "kafka.json"
CLUSTER_SIZE = 3


def kraft_cluster_id() -> str:
    """A random KRaft cluster id (base64url of a UUID) that cannot be read as a command-line option."""
    import base64
    import uuid

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True)
class KafkaShape:
    """How many nodes the stack's Kafka has, and whether its client listener speaks TLS."""

    brokers: int
    tls: bool

    @property
    def security_protocol(self) -> str:
        return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"


def recorded_shape(layout: StackLayout) -> KafkaShape | None:
    """The shape a state folder's Kafka was set up with; a folder of the single-node era counts as one node."""
    path = layout.root / SHAPE_FILE
    if path.exists():
        data = json.loads(path.read_text())
        return KafkaShape(int(data["brokers"]), bool(data["tls"]))
    if (layout.service_dir("kafka") / "data" / "meta.properties").exists():
        return KafkaShape(1, False)
    return None


def resolve_shape(layout: StackLayout) -> KafkaShape:
    """The settings where given (F2_STACK_KAFKA_BROKERS, F2_STACK_KAFKA_TLS), else what the folder recorded."""
    recorded = recorded_shape(layout)
    s = layout.settings
    brokers = s.kafka_brokers or (recorded.brokers if recorded else 1)
    tls = s.kafka_tls if s.kafka_tls is not None else (recorded.tls if recorded else False)
    if brokers not in (1, CLUSTER_SIZE):
        raise StackError(
            f"F2_STACK_KAFKA_BROKERS={brokers}: the local stack runs Kafka as 1 node or as a cluster of "
            f"{CLUSTER_SIZE} (replication factor 3, min.insync.replicas 2); set 1 or {CLUSTER_SIZE}"
        )
    return KafkaShape(brokers, tls)


class Kafka(Service):
    """One KRaft node (broker and controller) of the stack's Kafka."""

    def __init__(self, cluster: KafkaCluster, node_id: int) -> None:
        super().__init__(cluster.layout)
        self.cluster = cluster
        self.node_id = node_id
        single = cluster.shape.brokers == 1
        self.name = "kafka" if single else f"kafka-{node_id}"
        step = 2 * (node_id - 1)
        self.port_setting = "F2_STACK_KAFKA_PORT" if single else f"F2_STACK_KAFKA_PORT (+{step} for node {node_id})"
        self.controller_port = self.settings.kafka_controller_port + step
        self._port = self.settings.kafka_port + step
        # Its own server.properties in the command line: a pid file left behind never names another node.
        self.process_marker = str(self.dir / "server.properties")

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    @property
    def voter(self) -> KafkaVoter:
        return KafkaVoter(self.node_id, self.settings.host, self.controller_port)

    def check_installed(self) -> None:
        if not shutil.which("java"):
            raise ProvisioningError("java is not installed (Java 17 runs the Kafka broker)")
        libs = self.settings.kafka_libs
        if not libs.is_dir() or not any(libs.glob("kafka_2.13-*.jar")):
            raise ProvisioningError(f"Kafka broker jars are missing in {libs} (make provision resolves them)")

    def check_ports(self) -> None:
        ports.require_free_port(self.name, self.settings.host, self.port, self.port_setting)
        ports.require_free_port(
            f"{self.name} (controller)",
            self.settings.host,
            self.controller_port,
            "F2_STACK_KAFKA_CONTROLLER_PORT" + ("" if self.node_id == 1 else f" (+{2 * (self.node_id - 1)})"),
        )

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Xms{self.settings.kafka_heap}",
            f"-Xmx{self.settings.kafka_heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.layout.logs}",
            "-cp",
            f"{self.settings.kafka_libs}/*",
            main,
            *args,
        ]

    @property
    def formatted(self) -> bool:
        return (self.dir / "data" / "meta.properties").exists()

    def formatted_cluster_id(self) -> str | None:
        try:
            for line in (self.dir / "data" / "meta.properties").read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.split("=", 1)[1].strip()
        except FileNotFoundError:
            return None
        return None

    def node(self) -> KafkaNode:
        s = self.settings
        return KafkaNode(
            client_bind=s.host,
            client_port=self.port,
            advertised_host=s.host,
            controller_host=s.host,
            controller_port=self.controller_port,
            sasl_mechanism=KAFKA_SASL_MECHANISM,
            log_dirs=str(self.dir / "data"),
            num_partitions=s.kafka_partitions,
            node_id=self.node_id,
            quorum=tuple(n.voter for n in self.cluster.nodes),
            tls=self._tls_files() if self.cluster.shape.tls else None,
        )

    def _tls_files(self) -> KafkaTlsFiles:
        """The broker's key and certificate chain in one PEM file of its own (0600), and the stack's CA."""
        ca = self.cluster.pki()
        keystore = self.dir / "keystore.pem"
        keystore.touch(mode=0o600)
        keystore.chmod(0o600)
        keystore.write_bytes(ca.server_key_path.read_bytes() + ca.server_cert_path.read_bytes())
        return KafkaTlsFiles(keystore=str(keystore), truststore=str(ca.ca_cert_path))

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        node = self.node()
        # The broker's settings are service_config's (shared with Compose); this stack adds where it listens
        # (the controller listener on the stack's loopback host) and the inter-broker SCRAM login.
        jaas = Directive(
            f"listener.name.{node.client_protocol.lower()}.{KAFKA_SASL_MECHANISM.lower()}.sasl.jaas.config",
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{KAFKA_ADMIN_USER}" password="{self.cluster.admin_password}";',
        )
        properties = self.dir / "server.properties"
        properties.touch(mode=0o600)
        properties.chmod(0o600)  # it holds the admin's password: private before it is written
        properties.write_text(
            server_properties(
                [*kafka_properties(node), jaas],
                header="The local stack's Kafka node (f2 stack up writes this file at every start).",
            )
        )
        (self.dir / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.console.type = Console\nappender.console.name = STDOUT\n"
            "appender.console.layout.type = PatternLayout\n"
            "appender.console.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = WARN\nrootLogger.appenderRef.stdout.ref = STDOUT\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = WARN\n"
            "logger.server.name = kafka.server.KafkaServer\nlogger.server.level = INFO\n"
        )
        if not self.formatted:
            result = subprocess.run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    self.cluster.cluster_id,
                    "-c",
                    str(properties),
                    # SCRAM users live in the KRaft metadata: created with the cluster.
                    "--add-scram",
                    f"{KAFKA_SASL_MECHANISM}=[name={KAFKA_ADMIN_USER},password={self.cluster.admin_password}]",
                    "--add-scram",
                    f"{KAFKA_SASL_MECHANISM}=[name={KAFKA_CLIENT_USER},password={self.cluster.client_password}]",
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise StackError(f"{self.name}: formatting the KRaft storage failed: {result.stderr.strip()[-2000:]}")

    def launch(self) -> None:
        process.spawn(
            self._java("kafka.Kafka", str(self.dir / "server.properties")),
            self.log,
            self.layout.pidfile(self.name),
            detached=True,
        )

    def start_timeout(self) -> float:
        return 90.0

    def start(self) -> None:
        """Start this node alone (the others of a cluster running): a restart after a stop or a kill."""
        if not self.running():
            self.check_ports()
        super().start()

    def answers(self) -> bool:
        """This node serves clients: it answers a metadata request made to it alone."""
        from confluent_kafka.admin import AdminClient

        if ports.port_is_free(self.settings.host, self.port):
            return False
        try:
            config = {**self.cluster.client_config(admin=True), "bootstrap.servers": self.address}
            metadata = AdminClient({**config, "socket.timeout.ms": 2000}).list_topics(timeout=3)
            return self.node_id in metadata.brokers
        except Exception:
            return False


class KafkaCluster:
    """The stack's Kafka nodes as one unit: `f2 stack up` starts them together (a node of a cluster cannot
    answer before a majority of the quorum runs), `down` stops them together."""

    name = "kafka"

    def __init__(self, layout: StackLayout, pki: Callable[[], CertificateAuthority]) -> None:
        self.layout = layout
        self.settings = layout.settings
        self.shape = resolve_shape(layout)
        self.pki = pki
        self.nodes = [Kafka(self, n) for n in range(1, self.shape.brokers + 1)]

    @property
    def replication(self) -> KafkaReplication:
        return kafka_replication(self.shape.brokers)

    def node(self, node_id: int) -> Kafka:
        return self.nodes[node_id - 1]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def admin_password(self) -> str:
        return self.layout.secret("kafka_admin_password")

    @property
    def client_password(self) -> str:
        return self.layout.secret("kafka_client_password")

    @property
    def ca_location(self) -> Path | None:
        return self.layout.pki_dir / "ca.crt" if self.shape.tls else None

    def client_config(self, admin: bool = False) -> dict[str, str]:
        config = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.shape.security_protocol,
            "sasl.mechanism": KAFKA_SASL_MECHANISM,
            "sasl.username": KAFKA_ADMIN_USER if admin else KAFKA_CLIENT_USER,
            "sasl.password": self.admin_password if admin else self.client_password,
        }
        if self.ca_location is not None:
            config["ssl.ca.location"] = str(self.ca_location)
        return config

    @cached_property
    def cluster_id(self) -> str:
        """The id the nodes are formatted with: the one a formatted node already has, else a new one."""
        for node in self.nodes:
            found = node.formatted_cluster_id()
            if found:
                return found
        return kraft_cluster_id()

    def running(self) -> bool:
        return all(n.running() for n in self.nodes)

    def any_running(self) -> bool:
        return any(n.running() for n in self.nodes)

    def pid(self) -> int | None:
        return self.nodes[0].pid()

    @property
    def where(self) -> str:
        if len(self.nodes) == 1:
            return self.nodes[0].address
        return f"{', '.join(n.address for n in self.nodes)} ({len(self.nodes)} KRaft nodes)"

    def _check_shape(self) -> None:
        recorded = recorded_shape(self.layout)
        if recorded is None:
            return
        if recorded.brokers != self.shape.brokers:
            raise StackError(
                f"the stack in {self.layout.root} holds a Kafka of {recorded.brokers} node(s), not "
                f"{self.shape.brokers} (F2_STACK_KAFKA_BROKERS): unset the setting to use it, or choose another "
                "F2_STATE_DIR, or delete this one with `f2 stack reset --yes`"
            )
        if recorded.tls != self.shape.tls and self.any_running():
            state = "on" if recorded.tls else "off"
            raise StackError(
                f"Kafka runs with TLS {state}: stop the stack (`f2 stack down`) before changing F2_STACK_KAFKA_TLS"
            )

    def _record_shape(self) -> None:
        path = self.layout.root / SHAPE_FILE
        path.write_text(json.dumps({"brokers": self.shape.brokers, "tls": self.shape.tls}) + "\n")

    def start(self) -> None:
        """Start the nodes that are not running, together, and wait until every node serves clients."""
        self._check_shape()
        starting = [n for n in self.nodes if not n.running()]
        for node in starting:
            node.check_ports()
            node.check_installed()
        for node in starting:
            node.prepare()
        self._record_shape()
        for node in starting:
            node.launch()
        timeout = max(n.start_timeout() for n in self.nodes) + 30.0 * (len(self.nodes) - 1)
        if not process.wait_until(lambda: all(n.answers() or not n.running() for n in self.nodes), timeout):
            self.stop()
            late = [n.name for n in self.nodes if not n.answers()]
            raise StackError(
                f"{', '.join(late)} did not answer within {timeout:.0f} s; see "
                + ", ".join(str(self.layout.log(name)) for name in late)
            )
        exited = [n for n in self.nodes if not n.running()]
        if exited:
            self.stop()
            raise StackError(
                "\n".join(f"{n.name} exited during start-up; last lines of {n.log}:\n{_tail(n.log)}" for n in exited)
            )

    def stop(self) -> None:
        """SIGTERM to every node at once, then wait: a node stopped alone while the others run hands its
        partitions over, and the last ones would wait for a quorum that is gone."""
        pids = [pid for n in self.nodes if n.running() and (pid := n.pid()) is not None]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in pids:
            _wait_or_kill(pid, 60.0)
        for node in self.nodes:
            if not node.running():
                self.layout.pidfile(node.name).unlink(missing_ok=True)

    def status(self) -> list[ServiceStatus]:
        return [n.status() for n in self.nodes]


def _wait_or_kill(pid: int, timeout: float) -> None:
    if not process.wait_until(lambda: not process.pid_alive(pid), timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        process.wait_until(lambda: not process.pid_alive(pid), 5.0)
