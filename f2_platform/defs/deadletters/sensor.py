"""Proposes a dead-letter replay when a registry change would rescue dead letters: after each new registry
version (the registry's change notifications bump it, sql/registry/0003), the pending dead letters of registry
reasons of the last days are probed with the registry as it is now; each controller whose dead letters now
decode gets a run request for deadletter_replay_job over its own dead letters, keyed by controller and registry
version (requested once)."""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from f2_platform.deadletters.letters import REGISTRY_REASONS
from f2_platform.deadletters.replay import ReplayFilter, read_letters, replay_status
from f2_platform.deadletters.rescue import Rescue, rescues
from f2_platform.defs.deadletters.config import JOB_NAME, OP_NAME
from f2_platform.defs.deadletters.job import deadletter_replay_job
from f2_platform.defs.resources import KafkaAdminResource, RegistryResource, TimescaleResource
from f2_platform.environment import default_status
from streaming.settings import ProcessorSettings

# How far back the sensor looks for dead letters to rescue (f2.deadletter keeps 30 days; f2.raw, which reader
# dead letters need, 7).
LOOKBACK = timedelta(days=7)


def last_version(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        return int(json.loads(cursor)["registry_version"])
    except (ValueError, TypeError, KeyError):
        return None


def replay_request(rescue: Rescue, registry_version: int, now: datetime) -> dg.RunRequest:
    """Pure: the run that replays one controller's dead letters of registry reasons, requested once per
    controller and registry version."""
    config = {
        "start": rescue.first.isoformat(),
        "end": now.isoformat(),
        "reasons": list(REGISTRY_REASONS),
        "controllers": [rescue.controller],
    }
    return dg.RunRequest(
        run_key=f"deadletter-replay:{rescue.controller}:registry-v{registry_version}",
        job_name=JOB_NAME,
        run_config={"ops": {OP_NAME: {"config": config}}},
        tags={
            "f2/trigger": "registry-change",
            "f2/controller": rescue.controller,
            "f2/registry_version": str(registry_version),
            "f2/pending_dead_letters": str(rescue.pending),
        },
    )


@dg.sensor(
    name="deadletter_replay_sensor",
    job=deadletter_replay_job,
    minimum_interval_seconds=60,
    description="After a registry change, proposes a replay of each controller's dead letters that the registry "
    "now decodes (e.g. unknown-controller dead letters of a controller registered since).",
    default_status=default_status(dg.DefaultSensorStatus),
)
def deadletter_replay_sensor(
    context: dg.SensorEvaluationContext,
    registry: RegistryResource,
    kafka_admin: KafkaAdminResource,
    timescale: TimescaleResource,
) -> dg.SensorResult:
    store = registry.store()
    try:
        version = store.version()
        previous = last_version(context.cursor)
        cursor = json.dumps({"registry_version": version})
        if previous == version:
            return dg.SensorResult(run_requests=[], cursor=cursor, skip_reason=f"registry unchanged (v{version})")
        now = datetime.now(UTC)
        window = ReplayFilter(now - LOOKBACK, now, frozenset(REGISTRY_REASONS))
        letters = read_letters(kafka_admin.client_config(), window)
        status = replay_status(timescale.resolved_dsn(), [x for x in letters if x.replayable])
        found = rescues(letters, status, lambda mac: store.load(mac)[1], ProcessorSettings().max_payload_bytes)
    finally:
        store.close()
    for rescue in found:
        context.log.info(
            f"registry v{version} decodes dead letters of {rescue.controller}: {rescue.pending} pending "
            f"({', '.join(sorted(rescue.reasons))}) since {rescue.first.isoformat()}"
        )
    return dg.SensorResult(
        run_requests=[replay_request(r, version, now) for r in found],
        cursor=cursor,
        skip_reason=None if found else f"registry v{version}: no pending dead letter decodes now",
    )
