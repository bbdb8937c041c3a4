"""`f2 bridge | processor | sink`: the real-time path's daemons, each supervised (streaming/runtime/supervisor.py).

The daemons read only their environment. Here, and only here, the local stack fills in the connection
settings the environment leaves unset (f2_platform/connections.py), and they are passed on to the worker.
"""

from __future__ import annotations

import os

import click


def _supervise(module: str, extra: dict[str, str] | None = None) -> int:
    from f2_platform.connections import resolve_connections
    from streaming.runtime.supervisor import supervise

    return supervise(module, env={**os.environ, **resolve_connections().to_env(), **(extra or {})})


@click.command()
def bridge() -> None:
    """MQTT -> Kafka bridge (settings F2_BRIDGE_*, and F2_CREDENTIAL_* for reader credentials)."""
    from f2_platform.connections import resolve_credentials

    raise SystemExit(_supervise("streaming.bridge", resolve_credentials().to_env()))


@click.command()
def processor() -> None:
    """Stream processor: raw -> decoded readings and dead letters (settings F2_PROCESSOR_*)."""
    raise SystemExit(_supervise("streaming.processor"))


@click.command()
def sink() -> None:
    """Sink: decoded readings -> TimescaleDB decoded_data (settings F2_SINK_*)."""
    raise SystemExit(_supervise("streaming.sink"))
