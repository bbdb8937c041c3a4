"""The replay job's configuration and its op's name (shared by the job and the sensor that requests it)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from f2_platform.deadletters.replay import ReplayFilter
from f2_platform.defs.reprocessing.window import parse_instant

OP_NAME = "replay_dead_letters"
JOB_NAME = "deadletter_replay_job"


class DeadLetterReplayConfig(dg.Config):
    start: str = Field(description="Dead letters written at or after this instant (RFC 3339, UTC), inclusive.")
    end: str = Field(default="", description="... and before this one (RFC 3339); empty: up to now.")
    reasons: list[str] = Field(default_factory=list, description="Only these reasons (empty: every reason).")
    controllers: list[str] = Field(default_factory=list, description="Only these controllers' MACs (empty: all).")
    dry_run: bool = Field(default=False, description="Decode and report; store nothing.")


def replay_filter(config: DeadLetterReplayConfig) -> ReplayFilter:
    start = parse_instant(config.start, "start")
    end = parse_instant(config.end, "end") if config.end else datetime.now(UTC)
    if end <= start:
        raise ValueError(f"end {config.end} is not after start {config.start}")
    return ReplayFilter(start, end, frozenset(config.reasons), frozenset(m.lower() for m in config.controllers))
