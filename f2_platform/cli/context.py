"""What the `certs` commands need from the platform: the pki dir, the registry and the broker to reload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from f2_platform.settings import StackSettings


def _pki_dir() -> Path:
    return StackSettings().state_dir / "pki"


def _registry_dsn() -> str:
    from f2_platform.connections import resolve_connections

    return resolve_connections().registry_dsn


def _registry_macs() -> set[str]:
    import psycopg

    from f2_platform.connections import resolve_connections
    from streaming.registry_schema import in_schema

    conn_settings = resolve_connections()
    query = in_schema(
        'SELECT macaddress FROM "VtDevice".devices WHERE macaddress IS NOT NULL', conn_settings.registry_schema
    )
    with psycopg.connect(conn_settings.registry_dsn, connect_timeout=10) as conn:
        rows = conn.execute(query).fetchall()
    return {r[0] for r in rows}


def _reload_broker(crl: Path) -> None:
    """A new CRL takes effect when the local broker reloads it."""
    from f2_platform.stack.manager import Stack

    stack = Stack(StackSettings())
    if crl.resolve().parent == stack.layout.pki_dir.resolve() and stack.mosquitto.running():
        stack.mosquitto.reload()


def _restart_broker(pki_dir: Path) -> None:
    """An adopted CA takes effect when the local broker starts again: it reads its cafile and certificate then."""
    import click

    from f2_platform.stack.manager import Stack

    stack = Stack(StackSettings())
    if pki_dir.resolve() != stack.layout.pki_dir.resolve() or not stack.mosquitto.running():
        click.echo("NOTE: restart the broker (and `f2 certs serve`) so they use the adopted CA and its certificates")
        return
    stack.mosquitto.stop()
    stack.mosquitto.start()
    click.echo("restarted the local stack's broker: it trusts the adopted CA; restart `f2 certs serve` too")


def certs_context() -> dict[str, Any]:
    return {
        "pki_dir": _pki_dir,
        "registry_dsn": _registry_dsn,
        "registry_macs": _registry_macs,
        "on_crl_updated": _reload_broker,
        "on_ca_changed": _restart_broker,
    }
