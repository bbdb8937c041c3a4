#!/usr/bin/env python3
"""f2-init: one-shot preparation of a deployment, safe to re-run (a Compose job, a Kubernetes Job).

1. waits until PostgreSQL and Kafka answer (bounded);
2. applies the schema migrations (registry and time series), as `f2 db migrate` does;
3. applies the least-privilege grants of sql/grants.sql when F2_INIT_GRANTS_SQL names it (and, for a registry
   in a database of its own, grants_registry.sql beside it there), in the registry schema F2_REGISTRY_SCHEMA,
   and those of the enrollment service's role f2_enroll (grants_enrollment.sql beside it, in the registry's
   database) where that role exists;
4. creates the platform's Kafka topics that are missing, with F2_INIT_KAFKA_PARTITIONS partitions
   (default 6: the most processors or sinks that can share the work) and F2_INIT_KAFKA_REPLICATION_FACTOR;
5. loads the sample registry when F2_INIT_SEED_SAMPLE=1 (demo deployments only).

It reads the same F2_* settings as every daemon, with credentials allowed to create tables and topics.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path


def say(message: str) -> None:
    print(f"f2-init: {message}", flush=True)


def wait_for(what: str, probe: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            probe()
            say(f"{what} answers")
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"f2-init: {what} did not answer within {timeout_s:.0f} s: {exc}") from exc
            time.sleep(2)


def main() -> int:
    import psycopg
    from confluent_kafka.admin import AdminClient

    from f2_platform.db.migrations import migrate
    from f2_platform.db.registry_link import link_registry, separate_databases
    from f2_platform.settings import RegistryLinkSettings
    from streaming.kafka.topics import ensure_topics
    from streaming.registry_schema import in_schema
    from streaming.settings import ConnectionSettings

    conn = ConnectionSettings()
    timeout = float(os.environ.get("F2_INIT_WAIT_S", "180"))
    partitions = int(os.environ.get("F2_INIT_KAFKA_PARTITIONS", "6"))
    replication = int(os.environ.get("F2_INIT_KAFKA_REPLICATION_FACTOR", "1"))

    def pg_probe() -> None:
        with psycopg.connect(conn.timeseries_dsn, connect_timeout=5) as db:
            db.execute("SELECT 1")

    def kafka_probe() -> None:
        AdminClient({**conn.kafka_config(), "socket.timeout.ms": 5000}).list_topics(timeout=5)

    wait_for("PostgreSQL", pg_probe, timeout)
    wait_for("Kafka", kafka_probe, timeout)

    for target, dsn in (("registry", conn.registry_dsn), ("timeseries", conn.timeseries_dsn)):
        applied = migrate(dsn, target, say=say, registry_schema=conn.registry_schema)
        say(f"{target}: {len(applied)} migration(s) applied" if applied else f"{target}: schema up to date")
    separate = separate_databases(conn.timeseries_dsn, conn.registry_dsn)

    grants = os.environ.get("F2_INIT_GRANTS_SQL")
    registry_grants = Path(grants).with_name("grants_registry.sql") if grants else None
    # Files shipped in the image, not user input; "VtDevice" in them is the registry schema. The registry's
    # own grants come first: the link may read the registry as the processor's read-only role.
    if separate and registry_grants is not None and registry_grants.exists():
        with psycopg.connect(conn.registry_dsn, autocommit=True) as db:
            db.execute(in_schema(registry_grants.read_text(), conn.registry_schema))
        say(f"grants applied from {registry_grants} in the registry's database")
    link_registry(conn.timeseries_dsn, conn.registry_dsn, conn.registry_schema, RegistryLinkSettings().dsn, say)
    if grants:
        with psycopg.connect(conn.timeseries_dsn, autocommit=True) as db:
            db.execute(in_schema(Path(grants).read_text(), conn.registry_schema))
        say(f"grants applied from {grants}")
        enrollment_grants = Path(grants).with_name("grants_enrollment.sql")
        with psycopg.connect(conn.registry_dsn, autocommit=True) as db:
            role = db.execute("SELECT 1 FROM pg_roles WHERE rolname = 'f2_enroll'").fetchone()
            if role is not None and enrollment_grants.exists():
                db.execute(in_schema(enrollment_grants.read_text(), conn.registry_schema))
                say(f"grants applied from {enrollment_grants} in the registry's database")
            elif role is None:
                say("no role f2_enroll: the enrollment service needs a DSN with the registry's rights")

    created = ensure_topics(conn.kafka_config(), partitions, replication)
    say(f"topics created: {', '.join(created)}" if created else "topics already exist")

    if os.environ.get("F2_INIT_SEED_SAMPLE") == "1":
        from f2_platform.registry.seed import seed_sample

        seed_sample(conn.registry_dsn, conn.registry_schema)
        say("sample registry loaded")
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
