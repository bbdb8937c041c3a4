"""Ports on this machine: whether one is free, a clear error when a service's port is taken, and free ports
for throw-away stacks and daemons."""

from __future__ import annotations

import random
import socket

from f2_platform.errors import PortBusyError


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(service: str, host: str, port: int, setting: str) -> None:
    if not port_is_free(host, port):
        raise PortBusyError(
            f"{service}: port {port} on {host} is busy (another process listens there); "
            f"stop that process or choose another port with {setting}"
        )


_issued: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A free port below the kernel's ephemeral range, so an outgoing connection cannot take it meanwhile."""
    for _ in range(1000):
        port = random.randint(20000, 32000)
        if port not in _issued and port_is_free(host, port):
            _issued.add(port)
            return port
    raise PortBusyError(f"no free port found on {host} between 20000 and 32000")


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive free ports (a Kafka cluster's nodes sit two ports apart)."""
    for _ in range(1000):
        first = random.randint(20000, 32000 - count)
        block = range(first, first + count)
        if not _issued.intersection(block) and all(port_is_free(host, port) for port in block):
            _issued.update(block)
            return first
    raise PortBusyError(f"no {count} consecutive free ports found on {host} between 20000 and 32000")
