"""How simulated controllers authenticate: like real ones, with a certificate each, obtained by enrolling
(the registry's claiming code and a CSR) the first time and kept in a folder of device credentials."""

from __future__ import annotations

from pathlib import Path

import psycopg

from simulator.mqtt_client import DeviceIdentity
from streaming.registry_schema import in_schema
from streaming.settings import ConnectionSettings


def enrolled_identities(
    conn: ConnectionSettings, macs: list[str], devices_dir: Path, enroll_url: str | None
) -> dict[str, DeviceIdentity]:
    """Each controller's certificate, enrolling (with its registry claiming code) those that have none yet."""
    from certs.enroll_client import enroll

    if conn.ca_cert is None or not Path(conn.ca_cert).exists():
        raise SystemExit("F2_CA_CERT is not set or missing: devices cannot verify the broker (f2 stack env sets it)")
    devices_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    identities = {}
    codes: dict[str, str] = {}
    for mac in macs:
        crt, key = devices_dir / f"{mac}.crt", devices_dir / f"{mac}.key"
        if not (crt.exists() and key.exists()):
            if enroll_url is None:
                raise SystemExit(f"{mac} has no certificate in {devices_dir} and F2_ENROLL_URL is not set")
            if not codes:
                with psycopg.connect(conn.registry_dsn, connect_timeout=10) as db:
                    codes = dict(
                        db.execute(
                            in_schema(
                                'SELECT macaddress, claimingcode FROM "VtDevice".devices WHERE macaddress = ANY(%s)',
                                conn.registry_schema,
                            ),
                            (macs,),
                        ).fetchall()
                    )
            crt, key = enroll(enroll_url, mac, codes.get(mac) or "", Path(conn.ca_cert), devices_dir)
        identities[mac] = DeviceIdentity(crt, key)
    return identities
