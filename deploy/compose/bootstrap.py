#!/usr/bin/env python3
"""Writes the Compose deployment's secrets into deploy/compose/secrets (or --out), idempotently.

Random passwords for every account, the DSNs and URLs built from them, Mosquitto's hashed password file,
Kafka's JAAS file, Redis's ACL file, and the broker's PKI (CA, server certificate, CRL) through `f2 certs`.
The PKI folder is also what the enrollment service (`enroll`) mounts read-write: it holds the CA key.
Existing files are kept, so re-running only adds what is missing; delete a file to rotate it (and restart
the services that use it; database role passwords are set once, when the database volume is created).

    sudo env "PATH=$PATH" python3 deploy/compose/bootstrap.py --mqtt-host mqtt.example.com
    # without a Python checkout, from the built image (as root in the container: it hands files to other users):
    docker run --rm -u 0 -v "$PWD/deploy/compose/secrets:/secrets" \
        f2-platform:0.1.0 python /app/deploy/compose/bootstrap.py --out /secrets --mqtt-host mqtt.example.com

Each secret file belongs to the user of the container it is mounted into (the uid and gid of that service's
`user:` in compose.yaml, SERVICE_USERS below) and only that user may read it (0400); a file two services
read belongs to the first and its group is the second's (0440). Compose bind-mounts secret files as they
are on the host (it ignores uid, gid and mode for file secrets), so this is what each container sees. Files no
container mounts stay the operator's (0600); certificates and the CRL are public (0644). The PKI folder
belongs to the enrollment service's user (--pki-uid/--pki-gid, Compose's F2_PKI_UID/F2_PKI_GID), which
signs certificates in it. Handing files to other users needs root: run it with sudo (or from the image as
root). Re-running it applies the ownership and modes to existing files too (a secrets folder an earlier
version wrote with 0644 files is brought to this).
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
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The Redis users' rights are the local stack's (f2_platform/stack/service_config.py, standard library only):
# importable from the checkout or the image (/app) this script sits in, without the platform installed.
sys.path.insert(0, str(HERE.parents[1]))
from f2_platform.stack.service_config import compose_redis_users_acl  # noqa: E402

KAFKA_USERS = ("admin", "f2-bridge", "f2-processor", "f2-sink", "f2-dagster")
DB_ROLES = ("f2_owner", "f2_processor", "f2_sink", "f2_grafana", "f2_enroll")

# uid, gid each image's container runs as (compose.yaml `user:`): the images' own users, 10001 for ours.
SERVICE_USERS: dict[str, tuple[int, int]] = {
    "mosquitto": (1883, 1883),  # eclipse-mosquitto: mosquitto
    "kafka": (1000, 1000),  # apache/kafka: appuser
    "timescaledb": (70, 70),  # timescale/timescaledb (Alpine): postgres
    "redis": (999, 1000),  # redis (Alpine): redis, group ping
    "prometheus": (65534, 65534),  # prom/prometheus: nobody
    "grafana": (472, 0),  # grafana/grafana: grafana, group root
    "f2": (10001, 10001),  # f2-platform (deploy/Dockerfile, F2_UID): f2-init, bridge, processor, sink, Dagster
}
PKI = "enroll"  # the enrollment service: its user is --pki-uid/--pki-gid
# Secret file -> the services that mount it (the first owns it). Files not named here no container mounts.
READERS: dict[str, tuple[str, ...]] = {
    "postgres_password": ("timescaledb",),
    "f2_owner_db_password": ("timescaledb",),
    "f2_processor_db_password": ("timescaledb",),
    "f2_sink_db_password": ("timescaledb",),
    "f2_enroll_db_password": ("timescaledb",),
    "f2_grafana_db_password": ("grafana", "timescaledb"),
    "dagster_pg_password": ("f2", "timescaledb"),
    "owner_dsn": ("f2",),
    "processor_registry_dsn": ("f2",),
    "sink_timeseries_dsn": ("f2",),
    "enroll_registry_dsn": (PKI,),
    "mosquitto_passwd": ("mosquitto",),
    "mqtt_bridge_password": ("f2", "mosquitto"),
    "credential_secret": ("f2",),
    "kafka_jaas.conf": ("kafka",),
    "kafka_admin.properties": ("kafka",),
    "kafka_admin_password": ("f2",),
    "kafka_bridge_password": ("f2",),
    "kafka_processor_password": ("f2",),
    "kafka_sink_password": ("f2",),
    "kafka_dagster_password": ("f2",),
    "redis_users.acl": ("redis",),
    "redis_health_password": ("redis",),
    "processor_redis_url": ("f2",),
    "dagster_redis_url": ("f2",),
    "grafana_admin_password": ("grafana",),
    "pki/server.key": (PKI, "mosquitto"),
}
PUBLIC = ("pki/ca.crt", "pki/server.crt", "pki/crl.pem")
PKI_PRIVATE_MODE = 0o600  # the CA key and the enrollment index: the enrollment service's alone


def file_access(readers: Iterable[tuple[int, int]]) -> tuple[int, int, int]:
    """uid, gid, mode of a secret file its readers ((uid, gid) each) and nobody else may read (pure)."""
    first: dict[int, int] = {}
    for uid, gid in readers:
        first.setdefault(uid, gid)
    users = list(first.items())
    if len(users) == 1:
        return users[0][0], users[0][1], 0o400
    if len(users) == 2:
        return users[0][0], users[1][1], 0o440
    raise ValueError(f"a secret read by {len(users)} users needs a group of its own: {users}")


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
            # Private from its first byte; protect() hands it to its readers afterwards.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(make())
            self.created.append(name)
        return path.read_text().strip()

    def password(self, name: str) -> str:
        return self.file(name, password)


def write_all(
    out: Path,
    f2: list[str],
    mqtt_hosts: list[str],
    pki_user: tuple[int, int] = SERVICE_USERS["f2"],
    chown: bool | None = None,
) -> list[str]:
    """Writes what is missing, then gives every file its owner and mode (`chown` None: when running as root;
    without it only the modes are set, every file staying the runner's)."""
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
    # The enrollment service's role: claiming codes and its enrollments table only (sql/grants_enrollment.sql).
    s.file("enroll_registry_dsn", lambda: f"postgresql://f2_enroll:{db['f2_enroll']}@timescaledb:5432/f2")
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
    protect(out, pki_user, os.geteuid() == 0 if chown is None else chown)
    return s.created


def protect(out: Path, pki_user: tuple[int, int], chown: bool) -> None:
    """Owner and mode of every file: READERS' files to their services' users, the PKI to the enrollment
    service's user, the rest the operator's."""
    users = {**SERVICE_USERS, PKI: pki_user}

    def give(path: Path, uid: int, gid: int, mode: int) -> None:
        if chown:
            os.chown(path, uid, gid, follow_symlinks=False)
        path.chmod(mode)

    pki = out / "pki"
    for path in [pki, *pki.rglob("*")]:
        if path.is_symlink():
            continue
        # The enrollment service writes its index, issued certificates and CRL here and takes its lock.
        give(path, *pki_user, 0o700 if path.is_dir() else PKI_PRIVATE_MODE)
    for name in PUBLIC:
        give(out / name, *pki_user, 0o644)
    for path in out.iterdir():
        if path.is_file() and path.name not in READERS:
            path.chmod(0o600)  # written but mounted nowhere: for the operator
    for name, readers in READERS.items():
        path = out / name
        if path.exists():
            give(path, *file_access(users[r] for r in readers))


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
    parser.add_argument("--pki-uid", type=int, default=10001, help="the enrollment service's uid (F2_PKI_UID)")
    parser.add_argument("--pki-gid", type=int, default=10001, help="the enrollment service's gid (F2_PKI_GID)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print(
            "bootstrap.py gives each secret file to the user of the container that reads it, which needs root: "
            'run it with sudo (sudo env "PATH=$PATH" python3 deploy/compose/bootstrap.py ...) or from the image '
            "with `docker run -u 0`. Nothing was written.",
            file=sys.stderr,
        )
        return 2
    created = write_all(args.out, shlex.split(args.f2), args.mqtt_host, (args.pki_uid, args.pki_gid), chown=True)
    print(f"secrets in {args.out}: " + (f"created {', '.join(created)}" if created else "all present"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
