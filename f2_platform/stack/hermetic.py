"""Throw-away stacks on free ports in a temporary state folder: the test suite's and `f2 bench`'s."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from f2_platform.settings import StackSettings
from f2_platform.stack.manager import Stack
from f2_platform.stack.ports import free_port, free_port_block


def make_state_dir(prefix: str) -> Path:
    # Services drop to their own users (postgres, mosquitto): the folder must be traversable by them.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def hermetic_stack_settings(
    state_dir: Path, partitions: int = 4, *, kafka_brokers: int | None = None, kafka_tls: bool | None = None
) -> StackSettings:
    """Free ports for every service. Kafka's shape: as given, else F2_STACK_KAFKA_BROKERS and
    F2_STACK_KAFKA_TLS of this environment (so `F2_STACK_KAFKA_BROKERS=3 make test` runs on a cluster), else
    one node in clear."""
    from_env = StackSettings(state_dir=state_dir)
    brokers = kafka_brokers or from_env.kafka_brokers or 1
    tls = kafka_tls if kafka_tls is not None else bool(from_env.kafka_tls)
    if brokers == 1:
        kafka_port, controller_port = free_port(), free_port()
    else:
        # Node n listens on kafka_port + 2(n-1) and kafka_controller_port + 2(n-1): one block of ports.
        kafka_port = free_port_block(2 * brokers)
        controller_port = kafka_port + 1
    return StackSettings(
        state_dir=state_dir,
        postgres_port=free_port(),
        redis_port=free_port(),
        mqtt_port=free_port(),
        mqtt_tls_port=free_port(),
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        enroll_port=free_port(),
        kafka_partitions=partitions,
        kafka_brokers=brokers,
        kafka_tls=tls,
    )


def stack_environment(stack: Stack) -> dict[str, str]:
    """Environment for a subprocess (`f2 ...`, a daemon) pointed at this stack and nothing else."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("F2_") and k.lower() not in ("http_proxy", "https_proxy")
    }
    s = stack.settings
    env.update(stack.env())
    env.update(
        {
            "F2_STACK_POSTGRES_PORT": str(s.postgres_port),
            "F2_STACK_REDIS_PORT": str(s.redis_port),
            "F2_STACK_MQTT_PORT": str(s.mqtt_port),
            "F2_STACK_MQTT_TLS_PORT": str(s.mqtt_tls_port),
            "F2_STACK_KAFKA_PORT": str(s.kafka_port),
            "F2_STACK_KAFKA_CONTROLLER_PORT": str(s.kafka_controller_port),
            "F2_STACK_KAFKA_PARTITIONS": str(s.kafka_partitions),
            "F2_STACK_KAFKA_BROKERS": str(stack.kafka.shape.brokers),
            "F2_STACK_KAFKA_TLS": "1" if stack.kafka.shape.tls else "0",
            "F2_STACK_ENROLL_PORT": str(s.enroll_port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env
