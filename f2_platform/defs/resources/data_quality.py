"""`data_quality`: the thresholds of the data-quality checks, the silence alerts and the daily report, as
resource configuration the Dagster UI shows (F2_QUALITY_*, QualitySettings)."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from f2_platform.quality.settings import QualitySettings


def _from_settings(name: str) -> Any:
    """A field with QualitySettings' default and description for `name` (one declaration of each threshold)."""
    declared = QualitySettings.model_fields[name]
    return Field(default=declared.default, description=f"F2_QUALITY_{name.upper()}: {declared.description}")


class DataQualityResource(dg.ConfigurableResource):
    """The code location builds it from QualitySettings (`from_settings()`), so each field holds what the
    environment sets or QualitySettings' default; a run's configuration may override any of them.

    Python API: `quality_settings() -> QualitySettings`, what the checks, sensors and reports are handed.
    """

    future_tolerance_s: int = _from_settings("future_tolerance_s")
    silent_after_intervals: int = _from_settings("silent_after_intervals")
    gap_after_intervals: int = _from_settings("gap_after_intervals")
    min_completeness: float = _from_settings("min_completeness")
    stuck_after_s: int = _from_settings("stuck_after_s")
    stuck_min_samples: int = _from_settings("stuck_min_samples")
    stuck_exempt_labels: list[str] = _from_settings("stuck_exempt_labels")
    freshness_lookback_days: int = _from_settings("freshness_lookback_days")
    recent_window_s: int = _from_settings("recent_window_s")
    sample_rows: int = _from_settings("sample_rows")
    door_held_open_s: int = _from_settings("door_held_open_s")
    reader_flood_scans_per_minute: int = _from_settings("reader_flood_scans_per_minute")
    report_dir: str | None = _from_settings("report_dir")

    @classmethod
    def from_settings(cls, settings: QualitySettings | None = None) -> DataQualityResource:
        settings = settings or QualitySettings()
        values: dict[str, Any] = settings.model_dump(exclude={"report_dir"})
        report_dir = str(settings.report_dir) if settings.report_dir is not None else None
        return cls(**values, report_dir=report_dir)

    def quality_settings(self) -> QualitySettings:
        """These thresholds, validated. An unset report_dir is read from the environment when this runs."""
        values = {name: getattr(self, name) for name in QualitySettings.model_fields}
        return QualitySettings(**{name: value for name, value in values.items() if value is not None})
