"""Settings of the data-quality checks, reports and alerts (the only place in f2_platform.quality that reads
the environment; endpoints of the databases and Kafka come from ConnectionSettings).

- `F2_QUALITY_*` (QualitySettings): thresholds of the checks and where reports are written.
- `F2_ALERT_*` (AlertSettings): the webhook alerts are posted to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class QualitySettings(BaseSettings):
    """Thresholds of the data-quality rules. Intervals are multiples of a template's expected interval.

    The code location shows them as the configuration of its `data_quality` resource
    (f2_platform/defs/resources/data_quality.py), whose fields take their defaults and descriptions from here.
    """

    model_config = SettingsConfigDict(env_prefix="F2_QUALITY_", extra="ignore")

    future_tolerance_s: int = Field(
        300,
        ge=0,
        description="A reading stamped later than the check's reference time plus this many seconds is from the "
        "future (device clock).",
    )
    silent_after_intervals: int = Field(
        10, ge=2, description="Silent: no reading for longer than this many expected intervals."
    )
    gap_after_intervals: int = Field(
        10, ge=2, description="Gap: two consecutive readings of a device further apart than this many intervals."
    )
    min_completeness: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Completeness: share of expected frames present in an hour, below which the hour is reported.",
    )
    stuck_after_s: int = Field(
        7200, gt=0, description="Stuck: one value, unchanged, for at least this many seconds (and stuck_min_samples)."
    )
    stuck_min_samples: int = Field(
        20, ge=2, description="Stuck: one value, unchanged, for at least this many readings."
    )
    stuck_exempt_labels: Annotated[list[str], NoDecode] = Field(
        ["Battery", "Energy"],
        description="Datapoint labels that legitimately stay flat for hours (a battery level, an energy counter at "
        "rest); comma-separated in the environment.",
    )
    freshness_lookback_days: int = Field(
        30,
        gt=0,
        description="Freshness looks this many days back for a device's last reading; older devices are 'no data', "
        "not silent.",
    )
    recent_window_s: int = Field(
        3 * 3600, gt=0, description="Checks on recent readings (decoded_data) cover this many seconds before now."
    )
    sample_rows: int = Field(20, gt=0, description="Failing rows shown in a check's metadata and in a report table.")
    door_held_open_s: int = Field(
        300,
        gt=0,
        description="Door held open: a door open for longer than this many seconds (an open run in the checked "
        "window, or open still) fails the door_held_open warning and is alerted once per open run.",
    )
    reader_flood_scans_per_minute: int = Field(
        30,
        gt=0,
        description="Reader flooding: more scans than this on one reader within one minute (UTC) fails the "
        "reader_flood warning (a stuck card, a replay, a reader fault).",
    )
    report_dir: Path | None = Field(
        None, description="Where the daily reports go (unset: <F2_STATE_DIR>/reports/data-quality)."
    )

    @field_validator("stuck_exempt_labels", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class AlertSettings(BaseSettings):
    """Alerts: a failed blocking check or a device falling silent. Without a URL they are only logged."""

    model_config = SettingsConfigDict(env_prefix="F2_ALERT_", extra="ignore")

    webhook_url: str | None = None
    timeout_s: float = Field(5.0, gt=0)
    attempts: int = Field(2, ge=1)


class DbtSettings(BaseSettings):
    """The dbt project's connection (read by dbt/profiles.yml as F2_DBT_* environment variables).

    Unset pieces are derived from F2_TIMESERIES_DSN when the code location runs dbt (the `dbt` resource,
    f2_platform/defs/analytics/resource.py), so a deployment that sets the contract's DSN needs nothing more;
    set them to point the analytics elsewhere (another role).
    """

    model_config = SettingsConfigDict(env_prefix="F2_DBT_", extra="ignore", populate_by_name=True)

    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    dbname: str | None = None
    sslmode: str | None = None
    schema_name: str = Field("f2_analytics", validation_alias="F2_DBT_SCHEMA")
    threads: int = Field(4, gt=0)
