"""The dead-letter replay job: decode a window's dead letters again with the current registry and store what
now decodes, once (f2_platform/deadletters/replay.py; the same as `f2 deadletters replay`)."""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
import dagster as dg

from f2_platform.deadletters.replay import ReplayBusy, Replayer
from f2_platform.defs.asset_keys import DEADLETTER_TOPIC, DECODED_DATA
from f2_platform.defs.deadletters.config import JOB_NAME, OP_NAME, DeadLetterReplayConfig, replay_filter
from f2_platform.defs.resources import KafkaAdminResource, RegistryResource, TimescaleResource
from streaming.settings import ProcessorSettings


@dg.op(
    name=OP_NAME,
    description="Reads the window's dead letters from f2.deadletter, decodes them with the current registry "
    "(the processor's per-record step), stores readings and events that now decode through the sink's write "
    "path and records each in deadletter_replays (never replayed twice); reports what still fails and why.",
)
def replay_dead_letters(
    context: dg.OpExecutionContext,
    config: DeadLetterReplayConfig,
    timescale: TimescaleResource,
    registry: RegistryResource,
    kafka_admin: KafkaAdminResource,
) -> dg.Output[dict[str, object]]:
    try:
        window = replay_filter(config)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from None
    store = registry.store()
    try:
        replayer = Replayer(
            kafka_admin.client_config(),
            timescale.resolved_dsn(),
            store.load,
            ProcessorSettings().max_payload_bytes,
            run_id=context.run_id,
        )
        report = replayer.run(window, dry_run=config.dry_run)
    except ReplayBusy as exc:
        raise dg.Failure(str(exc)) from None
    finally:
        store.close()
    summary = report.as_dict()
    summary["start"] = window.start.isoformat()
    summary["end"] = window.end.isoformat() if window.end else None
    context.log.info(
        f"{report.replayed} dead letter(s) replayed ({report.readings} readings, {report.events} events), "
        f"{report.already_replayed} replayed before, still failing: {dict(report.still_failing)}"
    )
    if not config.dry_run and report.replayed:
        context.log_event(
            dg.AssetObservation(
                asset_key=DECODED_DATA,
                metadata={"replayed_dead_letters": report.replayed, "readings_replayed": report.readings},
            )
        )
    context.log_event(
        dg.AssetObservation(
            asset_key=DEADLETTER_TOPIC,
            metadata={
                "replayed": report.replayed,
                "still_failing": dg.MetadataValue.json(dict(report.still_failing)),
            },
        )
    )
    return dg.Output(
        summary,
        metadata={
            "dead_letters_read": report.read,
            "matched": report.matched,
            "replayed": report.replayed,
            "already_replayed": report.already_replayed,
            "readings_stored": report.readings,
            "events_stored": report.events,
            "still_failing": dg.MetadataValue.json(dict(report.still_failing)),
            "failure_samples": dg.MetadataValue.json([f.__dict__ for f in report.failures]),
            "registry_versions": dg.MetadataValue.json(sorted(report.registry_versions)),
            "decoder_version": report.decoder_version,
            "dry_run": config.dry_run,
        },
    )


@dg.job(
    name=JOB_NAME,
    description="Replay dead letters the registry now decodes (a controller registered late, a device wired "
    "after it sent); idempotent: a replayed dead letter is never replayed again. Proposed by "
    "deadletter_replay_sensor after registry changes.",
    tags={"f2/concern": "deadletters"},
    executor_def=dg.in_process_executor,
)
def deadletter_replay_job() -> None:
    replay_dead_letters()
