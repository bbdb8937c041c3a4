"""The dead letters of the last days by reason, controller and day, with samples (payloads with credentials
fingerprinted or redacted) and their replay status: what `f2 deadletters list` prints, in the Dagster UI."""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from f2_platform.deadletters.replay import ReplayFilter, read_letters, replay_status
from f2_platform.deadletters.summary import Group, summarise, totals_by
from f2_platform.defs.asset_keys import DEADLETTER_TOPIC
from f2_platform.defs.resources import KafkaAdminResource, TimescaleResource


class DeadLetterSummaryConfig(dg.Config):
    days: int = Field(default=7, description="How many days back (f2.deadletter keeps 30).")
    samples: int = Field(default=2, description="Sample dead letters per day, reason and controller.")


def groups_markdown(groups: list[Group]) -> str:
    lines = ["| day | reason | controller | count | replay status |", "|---|---|---|---:|---|"]
    for g in groups:
        status = ", ".join(f"{k} {v}" for k, v in sorted(g.status.items()))
        lines.append(f"| {g.day.isoformat()} | {g.reason} | {g.controller} | {g.count} | {status} |")
    return "\n".join(lines)


@dg.asset(
    name="deadletters_summary",
    group_name="deadletters",
    deps=[DEADLETTER_TOPIC],
    description="Dead letters of the last days by reason, controller and day, with samples and replay status.",
)
def deadletters_summary(
    context: dg.AssetExecutionContext,
    config: DeadLetterSummaryConfig,
    kafka_admin: KafkaAdminResource,
    timescale: TimescaleResource,
) -> dg.MaterializeResult:
    now = datetime.now(UTC)
    letters = read_letters(kafka_admin.client_config(), ReplayFilter(now - timedelta(days=config.days), now))
    groups = summarise(letters, replay_status(timescale.resolved_dsn(), letters), config.samples)
    samples = [
        {"day": g.day.isoformat(), "reason": g.reason, "controller": g.controller, **s.__dict__}
        for g in groups
        for s in g.samples
    ]
    context.log.info(f"{len(letters)} dead letter(s) in the last {config.days} day(s), {len(groups)} group(s)")
    return dg.MaterializeResult(
        metadata={
            "dead_letters": len(letters),
            "by_reason": dg.MetadataValue.json(totals_by(groups, "reason")),
            "by_controller": dg.MetadataValue.json(totals_by(groups, "controller")),
            "by_day": dg.MetadataValue.json(totals_by(groups, "day")),
            "groups": dg.MetadataValue.md(groups_markdown(groups)),
            "samples": dg.MetadataValue.json(samples),
        }
    )
