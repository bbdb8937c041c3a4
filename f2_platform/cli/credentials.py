"""`f2 credentials fingerprint <token>`: a known card's fingerprints under every key, and the query for its events.

The bridge keeps no token (streaming/credentials): an operator who holds a card computes its fingerprint here,
with the same key settings as the bridge (F2_CREDENTIAL_*, or the local stack's), and finds its events in
`device_events` by that fingerprint. One fingerprint per key: the current one and each of
F2_CREDENTIAL_PREVIOUS_KEYS, since events keep the key id they were fingerprinted with.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import click

from f2_platform.errors import F2Error


class Fingerprint(NamedTuple):
    key_id: str
    role: str  # "current" or "previous"
    fingerprint: str


def token_bytes(token: str, hex_form: bool) -> bytes:
    """The token's bytes: its UTF-8 text, or with `hex_form` the bytes its hex pairs spell (spaces allowed)."""
    if not hex_form:
        return token.encode("utf-8")
    try:
        return bytes.fromhex(token)
    except ValueError:
        # The message does not repeat the token: it is a credential.
        raise F2Error(
            "--hex: the token is not hexadecimal byte pairs (two hex digits per byte, spaces allowed between bytes,"
            " e.g. '04 A1 B2 C3')"
        ) from None


def fingerprints(token: bytes) -> list[Fingerprint]:
    """The token's fingerprint under the current key and every previous key (F2_CREDENTIAL_*, falling back to
    the local stack's key)."""
    from f2_platform.connections import resolve_credentials
    from streaming.credentials import CredentialKeyError

    settings = resolve_credentials()
    try:
        current = settings.current_key()
        previous = settings.previous()
    except CredentialKeyError as exc:
        raise F2Error(str(exc)) from None
    return [
        Fingerprint(current.key_id, "current", current.fingerprint(token)),
        *(Fingerprint(key.key_id, "previous", key.fingerprint(token)) for key in previous),
    ]


def events_query(found: list[Fingerprint]) -> str:
    """The SQL that lists the card's events (key ids and fingerprints are checked text: no quoting needed)."""
    listed = ", ".join(f"'{f.fingerprint}'" for f in found)
    return (
        'SELECT "time", controller_mac, connector, component, kind, controller_id, device_id,\n'
        "       credential_key_id, credential_length, mqtt_topic\n"
        "FROM device_events\n"
        f"WHERE credential_fingerprint IN ({listed})\n"
        'ORDER BY "time" DESC;'
    )


@click.group()
def credentials() -> None:
    """Reader credentials: the platform keeps only their keyed fingerprints (F2_CREDENTIAL_*)."""


@credentials.command("fingerprint")
@click.argument("token")
@click.option("--hex", "hex_form", is_flag=True, help="TOKEN is hex byte pairs (a binary token, e.g. '04 A1 B2').")
def fingerprint(token: str, hex_form: bool) -> None:
    """Print TOKEN's fingerprint under the current and every previous key, and the SQL that finds its events.

    TOKEN is the card's text as the reader sends it, read as UTF-8 (a reader's `data` of b'"Hello"' is the
    7-character token "Hello" with its quotes). Give - to read it from standard input instead (one line), so
    that it stays out of the shell's history and the process list.
    """
    if token == "-":
        token = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    data = token_bytes(token, hex_form)
    found = fingerprints(data)
    click.echo(f"token: {len(data)} bytes")
    for f in found:
        click.echo(f"{f.key_id} ({f.role}): {f.fingerprint}")
    click.echo('\nIts events (psql "$F2_TIMESERIES_DSN"):')
    click.echo(events_query(found))
