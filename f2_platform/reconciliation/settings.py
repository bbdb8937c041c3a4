"""Settings of the hourly reconciliation (`F2_RECONCILE_*`), the only reader of those variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ReconciliationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="F2_RECONCILE_", extra="ignore")

    grace_minutes: int = Field(
        15,
        ge=0,
        le=24 * 60,
        description="The schedule reconciles an hour this many minutes after it closed, so the pipeline has "
        "processed and stored what the bridges received by its end.",
    )
    raw_margin_minutes: int = Field(
        30,
        ge=1,
        description="Raw records and bridge counts of an hour are looked for with Kafka timestamps up to this "
        "long after its end (a record's Kafka timestamp is when the bridge produced it, its hour is when it "
        "received it: a full producer queue delays the first).",
    )
    processing_window_hours: int = Field(
        24,
        ge=1,
        description="The processor's and the sink's outputs (f2.decoded, f2.events, f2.deadletter) of an hour's "
        "raw records are looked for up to this long after its end.",
    )
    differences_listed: int = Field(
        500,
        ge=1,
        description="At most this many differences per controller and hour are stored, and per hour shown in the "
        "check's metadata (taken in turn from each controller); all are counted.",
    )
