"""The private services of the local stack: PostgreSQL+TimescaleDB, Redis and Mosquitto here, Kafka's KRaft
nodes in kafka.py.

Each service knows how to prepare its data folder once, start, answer a health check, and stop cleanly.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from f2_platform.errors import ProvisioningError, StackError
from f2_platform.stack import ports
from f2_platform.stack.layout import StackLayout
from f2_platform.stack.service_config import (
    REDIS_CACHE_RIGHTS,
    REDIS_NO_DEFAULT_USER,
    Listener,
    MosquittoFiles,
    mosquitto_acl,
    mosquitto_conf,
    redis_acl_user,
    redis_conf,
)
from streaming.runtime import process

if TYPE_CHECKING:
    from certs.authority import CertificateAuthority

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DATABASE = "f2"
MQTT_INTERNAL_USER = "f2-internal"
REDIS_ADMIN_USER = "f2-admin"
REDIS_PROCESSOR_USER = "f2-processor"
# PostgreSQL roles of the daemons (grants in sql/grants.sql; the enrollment service's f2_enroll in
# sql/grants_enrollment.sql); the stack's superuser owns the schema.
PG_ROLES = ("f2_processor", "f2_sink", "f2_grafana", "f2_enroll")


@dataclass
class ServiceStatus:
    name: str
    port: int
    pid: int | None
    running: bool
    answers: bool
    detail: str = ""


class Service(ABC):
    name: str
    port_setting: str
    process_marker: str

    def __init__(self, layout: StackLayout) -> None:
        self.layout = layout
        self.settings = layout.settings

    @property
    @abstractmethod
    def port(self) -> int: ...

    @property
    def dir(self) -> Path:
        return self.layout.service_dir(self.name)

    @property
    def log(self) -> Path:
        return self.layout.log(self.name)

    def pid(self) -> int | None:
        return process.read_pid(self.layout.pidfile(self.name))

    def running(self) -> bool:
        return process.pid_alive(self.pid(), self.process_marker)

    def check_installed(self) -> None:  # noqa: B027 - optional hook, most services need no check
        """Raise ProvisioningError naming what is missing."""

    @abstractmethod
    def prepare(self) -> None:
        """One-time initialisation of the data folder; a no-op when already done."""

    @abstractmethod
    def launch(self) -> None: ...

    @abstractmethod
    def answers(self) -> bool: ...

    def start_timeout(self) -> float:
        return 30.0

    def start(self) -> None:
        if self.running():
            return
        ports.require_free_port(self.name, self.settings.host, self.port, self.port_setting)
        self.check_installed()
        self.prepare()
        self.launch()
        if not process.wait_until(lambda: self.answers() or not self.running(), self.start_timeout()):
            self.stop()
            raise StackError(
                f"{self.name} did not answer on port {self.port} within {self.start_timeout():.0f} s; see {self.log}"
            )
        if not self.running():
            self.stop()
            raise StackError(f"{self.name} exited during start-up; last lines of {self.log}:\n{_tail(self.log)}")

    def stop(self) -> None:
        process.terminate(self.pid(), signal.SIGTERM, timeout=60.0)
        self.layout.pidfile(self.name).unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: nothing is flushed or handed over."""
        pid = self.pid()
        if self.running():
            os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
            process.wait_until(lambda: not process.pid_alive(pid), 30.0)
        self.layout.pidfile(self.name).unlink(missing_ok=True)

    def status(self) -> ServiceStatus:
        running = self.running()
        return ServiceStatus(self.name, self.port, self.pid() if running else None, running, running and self.answers())


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _chown(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _service_user(name: str) -> str | None:
    """The unprivileged user a service runs as when we are root; None when we already are unprivileged."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError as exc:
        raise ProvisioningError(f"user {name!r} does not exist: install its Debian package (make provision)") from exc
    return name


class Postgres(Service):
    name = "postgres"
    port_setting = "F2_STACK_POSTGRES_PORT"
    process_marker = "postgres"

    @property
    def port(self) -> int:
        return self.settings.postgres_port

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def password(self) -> str:
        return self.layout.secret("postgres_password")

    def dsn(self, database: str = DATABASE, user: str = "postgres", password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{user}:{pw}@{self.settings.host}:{self.port}/{database}"

    def check_installed(self) -> None:
        if not (PG_BIN / "postgres").exists():
            raise ProvisioningError("PostgreSQL 15 is not installed (make provision installs postgresql-15)")
        if not (PG_BIN.parent / "lib" / "timescaledb.so").exists():
            raise ProvisioningError("TimescaleDB is not built for PostgreSQL 15 (make provision builds it)")

    def prepare(self) -> None:
        user = _service_user("postgres")
        if not (self.data / "PG_VERSION").exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            pwfile = self.dir / ".initpw"
            pwfile.write_text(self.password + "\n")
            if user:
                _chown(self.dir, user)
            result = subprocess.run(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                user=user,
                group=user,
                extra_groups=[] if user else None,
                capture_output=True,
                text=True,
                check=False,
            )
            pwfile.unlink(missing_ok=True)
            if result.returncode != 0:
                raise StackError(f"postgres: initdb failed: {result.stderr.strip() or result.stdout.strip()}")
            conf = self.data / "postgresql.conf"
            conf.write_text(conf.read_text() + "\ninclude_if_exists = 'f2.conf'\n")
        # Regenerated on every start so that a changed port setting takes effect.
        (self.data / "f2.conf").write_text(
            "\n".join(
                [
                    f"listen_addresses = '{self.settings.host}'",
                    f"port = {self.port}",
                    "unix_socket_directories = ''",
                    "shared_preload_libraries = 'timescaledb'",
                    "timescaledb.telemetry_level = off",
                    "password_encryption = 'scram-sha-256'",
                    "max_connections = 200",
                    "shared_buffers = 256MB",
                    # Ingest at 100,000 rows/s writes about 25 MB of WAL a second: with 2 GB a checkpoint came
                    # every 80 s, and every page's first change after one is logged whole. Fewer checkpoints
                    # and a larger WAL buffer: the sink stage stored about 5 % more rows per database CPU s.
                    "max_wal_size = 16GB",
                    "checkpoint_timeout = 30min",
                    "wal_buffers = 64MB",
                    "logging_collector = off",
                    "log_min_messages = warning",
                    "",
                ]
            )
        )
        (self.data / "pg_hba.conf").write_text(
            "host all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n"
        )
        if user:
            _chown(self.data, user)

    def launch(self) -> None:
        user = _service_user("postgres")
        # The log lives in our logs folder; the postgres user writes to it through the inherited descriptor.
        process.spawn(
            [str(PG_BIN / "postgres"), "-D", str(self.data)],
            self.log,
            self.layout.pidfile(self.name),
            detached=True,
            user=user,
        )

    def start_timeout(self) -> float:
        return 60.0

    def answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.dsn("postgres"), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def start(self) -> None:
        super().start()
        self.ensure_database()

    def ensure_database(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            # Login roles of the daemons, with scram-sha-256 passwords; their rights come from sql/grants.sql.
            for role in PG_ROLES:
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
                verb = "ALTER" if exists else "CREATE"
                conn.execute(
                    sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                        sql.SQL(verb), sql.Identifier(role), sql.Literal(self.role_password(role))
                    )
                )

    def role_password(self, role: str) -> str:
        return self.layout.secret(f"postgres_{role}_password")

    def role_dsn(self, role: str) -> str:
        return self.dsn(user=role, password=self.role_password(role))

    def stop(self) -> None:
        # SIGINT is PostgreSQL's fast shutdown: clients are disconnected, data is checkpointed.
        process.terminate(self.pid(), signal.SIGINT, timeout=60.0)
        self.layout.pidfile(self.name).unlink(missing_ok=True)


class Redis(Service):
    name = "redis"
    port_setting = "F2_STACK_REDIS_PORT"
    process_marker = "redis-server"

    @property
    def port(self) -> int:
        return self.settings.redis_port

    @property
    def password(self) -> str:
        return self.layout.secret("redis_admin_password")

    @property
    def processor_password(self) -> str:
        return self.layout.secret("redis_processor_password")

    def url(self, user: str = REDIS_ADMIN_USER) -> str:
        password = self.password if user == REDIS_ADMIN_USER else self.processor_password
        return f"redis://{user}:{password}@{self.settings.host}:{self.port}/0"

    def check_installed(self) -> None:
        if not shutil.which("redis-server"):
            raise ProvisioningError("redis-server is not installed (make provision installs redis-server)")

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "redis.conf"
        # The settings every deployment shares come from service_config; this stack adds its address, folder
        # and users: the admin (the stack's own health check and tools) and the processor's cache user.
        conf.write_text(
            redis_conf(
                self.settings.host,
                self.port,
                header="The local stack's Redis (f2 stack up writes this file at every start).",
                local=["daemonize no", f"dir {self.dir}"],
                acl=[
                    REDIS_NO_DEFAULT_USER,
                    redis_acl_user(REDIS_ADMIN_USER, self.password, "~* &* +@all"),
                    redis_acl_user(REDIS_PROCESSOR_USER, self.processor_password, REDIS_CACHE_RIGHTS),
                ],
            )
        )
        conf.chmod(0o600)

    def launch(self) -> None:
        process.spawn(
            ["redis-server", str(self.dir / "redis.conf")], self.log, self.layout.pidfile(self.name), detached=True
        )

    def answers(self) -> bool:
        import redis

        try:
            client = redis.Redis.from_url(self.url(), socket_timeout=2, socket_connect_timeout=2)
            return bool(client.ping())
        except redis.RedisError:
            return False


class Mosquitto(Service):
    name = "mosquitto"
    port_setting = "F2_STACK_MQTT_PORT"
    process_marker = "mosquitto"

    @property
    def port(self) -> int:
        return self.settings.mqtt_port

    @property
    def password(self) -> str:
        return self.layout.secret("mqtt_password")

    def check_installed(self) -> None:
        for tool in ("mosquitto", "mosquitto_passwd"):
            if (
                not shutil.which(tool)
                and not Path(f"/usr/sbin/{tool}").exists()
                and not Path(f"/usr/bin/{tool}").exists()
            ):
                raise ProvisioningError(f"{tool} is not installed (make provision installs mosquitto)")

    def _binary(self) -> str:
        return shutil.which("mosquitto") or "/usr/sbin/mosquitto"

    def pki(self) -> CertificateAuthority:
        from certs.authority import CertificateAuthority

        return CertificateAuthority(self.layout.pki_dir, broker_user=_service_user("mosquitto"))

    def ensure_pki(self) -> CertificateAuthority:
        """A CA, its CRL and the broker's certificate: created on first run, kept afterwards."""
        ca = self.pki()
        ca.init()
        if not ca.server_cert_path.exists():
            ca.issue_server(["localhost"], sorted({"127.0.0.1", self.settings.host}))
        return ca

    def prepare(self) -> None:
        user = _service_user("mosquitto")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "data").mkdir(exist_ok=True)
        ca = self.ensure_pki()
        passwd = self.dir / "passwd"
        passwd.unlink(missing_ok=True)
        passwd_tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        result = subprocess.run(
            [passwd_tool, "-c", "-b", str(passwd), MQTT_INTERNAL_USER, self.password],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"mosquitto: writing the password file failed: {result.stderr.strip()}")
        # One ACL for both listeners (service_config explains why the settings are global): this stack's
        # internal account may read and write every topic; devices get the shared per-MAC patterns.
        acl = self.dir / "acl"
        acl.write_text(
            mosquitto_acl(
                {MQTT_INTERNAL_USER: ("readwrite #",)},
                header="The local stack's Mosquitto ACL (f2 stack up writes this file at every start).",
            )
        )
        for stale in ("internal.acl", "devices.acl"):  # per-listener ACLs of earlier versions
            (self.dir / stale).unlink(missing_ok=True)
        s = self.settings
        (self.dir / "mosquitto.conf").write_text(
            mosquitto_conf(
                MosquittoFiles(
                    data_dir=str(self.dir / "data"),
                    password_file=str(passwd),
                    acl_file=str(acl),
                    ca_cert=str(ca.ca_cert_path),
                    server_cert=str(ca.server_cert_path),
                    server_key=str(ca.server_key_path),
                    crl=str(ca.crl_path),
                ),
                # Both listeners on the stack's host address only (loopback unless configured otherwise).
                internal=Listener(s.mqtt_port, s.host),
                device=Listener(s.mqtt_tls_port, s.host),
                header="The local stack's Mosquitto (f2 stack up writes this file at every start).",
            )
        )
        if user:
            _chown(self.dir, user)
            passwd.chmod(0o600)
            for path in ca.broker_files():
                ca.grant_read(path, user)

    def reload(self) -> None:
        """Make the broker re-read its configuration, certificates and CRL (SIGHUP)."""
        pid = self.pid()
        if process.pid_alive(pid, self.process_marker):
            os.kill(pid, signal.SIGHUP)  # type: ignore[arg-type]

    def launch(self) -> None:
        process.spawn(
            [self._binary(), "-c", str(self.dir / "mosquitto.conf")],
            self.log,
            self.layout.pidfile(self.name),
            detached=True,
        )

    def answers(self) -> bool:
        from f2_platform.stack.mqtt_probe import mqtt_answers

        if ports.port_is_free(self.settings.host, self.settings.mqtt_tls_port):
            return False
        return mqtt_answers(self.settings.host, self.port, MQTT_INTERNAL_USER, self.password)

    def start(self) -> None:
        if not self.running():
            ports.require_free_port(
                self.name, self.settings.host, self.settings.mqtt_tls_port, "F2_STACK_MQTT_TLS_PORT"
            )
        super().start()
