#!/usr/bin/env python3
"""Writes the Compose deployment's secrets into deploy/compose/secrets (or --out), idempotently.

Random passwords for every account, the DSNs and URLs built from them, Mosquitto's hashed password file,
Kafka's JAAS file, Redis's ACL file, and the broker's PKI (CA, server certificate, CRL) through `f2 certs`.
The PKI folder is also what the enrollment service (`enroll`) mounts read-write: it holds the CA key.
Existing files are kept, so re-running only adds what is missing; delete a file to rotate it (and restart
the services that use it; database role passwords are set once, when the database volume is created).

    python3 deploy/compose/bootstrap.py --mqtt-host mqtt.example.com
    # without a Python checkout, from the built image:
    docker run --rm -u "$(id -u):$(id -g)" -v "$PWD/deploy/compose/secrets:/secrets" \
        f2-platform:0.1.0 python /app/deploy/compose/bootstrap.py --out /secrets --mqtt-host mqtt.example.com

Files are mode 0644 inside a 0700 folder: other users of the host cannot reach them, and each container,
whatever its user id, can read the files Compose mounts into it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import secrets
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The Redis users' rights are the local stack's (f2_platform/stack/service_config.py, standard library only):
# importable from the checkout or the image (/app) this script sits in, without the platform installed.
sys.path.insert(0, str(HERE.parents[1]))
from f2_platform.stack.service_config import compose_redis_users_acl  # noqa: E402

KAFKA_USERS = ("admin", "f2-bridge", "f2-processor", "f2-sink", "f2-dagster")
DB_ROLES = ("f2_owner", "f2_processor", "f2_sink", "f2_grafana")


def password() -> str:
    # URL-safe, so that it needs no escaping inside a DSN or a URL.
    return secrets.token_urlsafe(32)


def mosquitto_hash(plain: str, iterations: int = 101) -> str:
    """Mosquitto 2.x password file entry: PBKDF2-SHA512, `$7$<iterations>$<salt>$<hash>` (base64)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", plain.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


class SecretsDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.created: list[str] = []
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o700)

    def file(self, name: str, make: Callable[[], str]) -> str:
        path = self.root / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(make())
            path.chmod(0o644)
            self.created.append(name)
        return path.read_text().strip()

    def password(self, name: str) -> str:
        return self.file(name, password)


def write_all(out: Path, f2: list[str], mqtt_hosts: list[str]) -> list[str]:
    s = SecretsDir(out)
    # PostgreSQL / TimescaleDB
    s.password("postgres_password")
    db = {role: s.password(f"{role}_db_password") for role in DB_ROLES}
    s.password("dagster_pg_password")
    s.file("owner_dsn", lambda: f"postgresql://f2_owner:{db['f2_owner']}@timescaledb:5432/f2")
    s.file(
        "processor_registry_dsn",
        lambda: f"postgresql://f2_processor:{db['f2_processor']}@timescaledb:5432/f2",
    )
    s.file("sink_timeseries_dsn", lambda: f"postgresql://f2_sink:{db['f2_sink']}@timescaledb:5432/f2")
    # Mosquitto: the bridge's account on the internal listener
    bridge = s.password("mqtt_bridge_password")
    s.file("mosquitto_passwd", lambda: f"f2-bridge:{mosquitto_hash(bridge)}\n")
    # The bridge's key for reader credentials' fingerprints (F2_CREDENTIAL_SECRET, key id k1). A new one gives
    # every card a new fingerprint: keep the old key for `f2 credentials fingerprint` (F2_CREDENTIAL_PREVIOUS_KEYS).
    s.password("credential_secret")
    # Kafka: one SASL/PLAIN account per client
    kafka = {user: s.password(f"kafka_{user.removeprefix('f2-')}_password") for user in KAFKA_USERS}
    jaas_users = "\n".join(f'  user_{user}="{pw}"' for user, pw in kafka.items())
    s.file(
        "kafka_jaas.conf",
        lambda: (
            "KafkaServer {\n  org.apache.kafka.common.security.plain.PlainLoginModule required\n"
            f'  username="admin"\n  password="{kafka["admin"]}"\n{jaas_users};\n}};\n'
        ),
    )
    s.file(
        "kafka_admin.properties",
        lambda: (
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
            "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="admin" password="{kafka["admin"]}";\n'
        ),
    )
    # Redis: ACL users with hashed passwords; no default user
    redis = {user: s.password(f"redis_{user.removeprefix('f2-')}_password") for user in ("f2-processor", "f2-dagster")}
    health = s.password("redis_health_password")
    s.file("redis_users.acl", lambda: compose_redis_users_acl({**redis, "f2-health": health}))
    s.file("processor_redis_url", lambda: f"redis://f2-processor:{redis['f2-processor']}@redis:6379/0")
    s.file("dagster_redis_url", lambda: f"redis://f2-dagster:{redis['f2-dagster']}@redis:6379/0")
    # Grafana
    s.password("grafana_admin_password")
    # The broker's PKI: the CA devices trust, the server certificate, the CRL
    pki = out / "pki"
    if not (pki / "ca.crt").exists():
        run([*f2, "certs", "--pki-dir", str(pki), "init"])
        s.created.append("pki/ca.crt, pki/crl.pem")
    if not (pki / "server.crt").exists():
        # The enrollment service (`enroll`) serves the same certificate: devices reach both by the same
        # public names, and Prometheus scrapes https://enroll:18443.
        names = ["mosquitto", "enroll", "localhost", *mqtt_hosts]
        hosts = [arg for host in names for arg in ("--host", host)]
        run([*f2, "certs", "--pki-dir", str(pki), "server", *hosts, "--ip", "127.0.0.1", "--broker-user", ""])
        s.created.append("pki/server.crt, pki/server.key")
    for name in ("ca.crt", "crl.pem", "server.crt", "server.key"):
        # Compose mounts these files into the broker, whose user is not the host's.
        (pki / name).chmod(0o644)
    pki.chmod(0o700)
    return s.created


def run(cmd: list[str]) -> None:
    print("+", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "secrets", help="folder of the secret files")
    parser.add_argument(
        "--mqtt-host",
        action="append",
        default=[],
        help="DNS name devices use to reach the broker (repeatable); goes into its certificate",
    )
    parser.add_argument(
        "--f2", default=os.environ.get("F2_CLI", "f2"), help="how to run the f2 CLI (default: f2, or $F2_CLI)"
    )
    args = parser.parse_args(argv)
    created = write_all(args.out, shlex.split(args.f2), args.mqtt_host)
    print(f"secrets in {args.out}: " + (f"created {', '.join(created)}" if created else "all present"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
