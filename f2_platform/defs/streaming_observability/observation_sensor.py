"""Records what the streaming daemons do as observations of the external assets, once a minute."""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
from collections.abc import Callable

import dagster as dg

from f2_platform.defs.asset_keys import DECODED_TOPIC, RAW_TOPIC
from f2_platform.defs.resources import KafkaAdminResource, TimescaleResource
from f2_platform.defs.streaming_observability.observations import (
    dead_letter_observation,
    dump_cursor,
    lag_observation,
    parse_cursor,
    table_observation,
    tally_dead_letters,
)
from f2_platform.environment import default_status
from streaming.kafka import topics


@dg.sensor(
    name="streaming_observation_sensor",
    minimum_interval_seconds=60,
    description="Consumer lag per group, dead letters by reason, and the size and freshness of decoded_data.",
    default_status=default_status(dg.DefaultSensorStatus),
)
def streaming_observation_sensor(
    context: dg.SensorEvaluationContext, kafka_admin: KafkaAdminResource, timescale: TimescaleResource
) -> dg.SensorResult:
    observations: list[dg.AssetObservation] = []
    failures: list[str] = []
    tally = parse_cursor(context.cursor)

    # Each measurement on its own: one system (or one topic) failing must not hide the others.
    def attempt(what: str, measure: Callable[[], None]) -> None:
        try:
            measure()
        except Exception as exc:
            failures.append(f"{what}: {exc}")

    def dead_letters() -> None:
        nonlocal tally
        tally, new = tally_dead_letters(kafka_admin, tally)
        observations.append(dead_letter_observation(tally, new))

    attempt(
        f"lag of {topics.GROUP_PROCESSOR}",
        lambda: observations.append(lag_observation(kafka_admin, RAW_TOPIC, topics.RAW, topics.GROUP_PROCESSOR)),
    )
    attempt(
        f"lag of {topics.GROUP_SINK}",
        lambda: observations.append(lag_observation(kafka_admin, DECODED_TOPIC, topics.DECODED, topics.GROUP_SINK)),
    )
    attempt("dead letters", dead_letters)
    attempt("decoded_data", lambda: observations.append(table_observation(timescale)))
    for failure in failures:
        context.log.warning(f"observation failed: {failure}")
    if not observations:
        raise RuntimeError("no system could be observed: " + "; ".join(failures))
    return dg.SensorResult(asset_events=observations, cursor=dump_cursor(tally))
