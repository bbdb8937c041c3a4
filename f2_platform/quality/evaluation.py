"""Runs the concerns over one window: reads each concern's frame, applies its check, keeps both.

Used by the Dagster asset checks (one concern each) and by the daily report (all of them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pandas as pd

from f2_platform.quality import checks as c
from f2_platform.quality import frames as f
from f2_platform.quality.fleet import Fleet
from f2_platform.quality.settings import QualitySettings
from f2_platform.quality.window import CheckWindow


@dataclass
class WindowEvaluation:
    """The concerns of `window` for `fleet`; each method reads its frame once and returns the outcome."""

    ts: f.Timeseries
    fleet: Fleet
    window: CheckWindow
    settings: QualitySettings = field(default_factory=QualitySettings)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    outcomes: dict[str, c.CheckOutcome] = field(default_factory=dict)
    suspect_totals: dict[str, int] = field(default_factory=dict)

    def _keep(self, outcome: c.CheckOutcome, frame: pd.DataFrame) -> c.CheckOutcome:
        self.frames[outcome.name] = frame
        self.outcomes[outcome.name] = outcome
        return outcome

    @property
    def scope(self) -> list[int] | None:
        """Device ids the readings checks are limited to: None (every device) unless controllers are chosen."""
        return self.fleet.device_ids if self.fleet.controllers else None

    def readings(self, full: bool = False) -> c.CheckOutcome:
        """`full`: validate every reading with a value from the window's start (short windows); otherwise only
        the suspects (future, non-finite): the key excludes duplicates, and readings without a value are
        `missing_values`'."""
        if full:
            frame = f.recent_readings_frame(self.ts, self.window, self.scope)
            self.suspect_totals = {}
            return self._keep(c.check_readings(frame, self.window.as_of, self.settings), frame)
        frame, totals = f.suspect_readings_frame(self.ts, self.window, self.scope)
        self.suspect_totals = totals
        return self._keep(c.check_readings(frame, self.window.as_of, self.settings, totals), frame)

    def plausibility(self) -> c.CheckOutcome:
        frame = f.plausibility_frame(self.ts, self.fleet, self.window)
        return self._keep(c.check_plausibility(frame), frame)

    def completeness(self) -> c.CheckOutcome:
        frame = f.cadence_frame(self.ts, self.fleet, self.window)
        return self._keep(c.check_completeness(frame[_COMPLETENESS_COLUMNS], self.settings), frame)

    def gaps(self) -> c.CheckOutcome:
        frame = f.gap_frame(self.ts, self.fleet, self.window)
        return self._keep(c.check_gaps(frame, self.settings), frame)

    def stuck(self) -> c.CheckOutcome:
        frame = f.stuck_frame(self.ts, self.fleet, self.window, self.settings.stuck_exempt_labels)
        return self._keep(c.check_stuck(frame, self.settings), frame)

    def missing_values(self) -> c.CheckOutcome:
        frame = f.missing_values_frame(self.ts, self.window, self.scope)
        return self._keep(c.check_missing_values(frame), frame)

    def freshness(self) -> c.CheckOutcome:
        lookback = timedelta(days=self.settings.freshness_lookback_days)
        frame = f.freshness_frame(self.ts, self.fleet, self.window, lookback)
        return self._keep(c.check_freshness(frame, self.settings), frame)

    def aggregates(self, table: str, width: timedelta) -> tuple[c.CheckOutcome, c.CheckOutcome]:
        """Integrity and plausibility of an aggregate's rows in the window."""
        rows = f.aggregate_frame(self.ts, table, self.window, self.scope)
        integrity = c.check_aggregates(rows, self.window.start, self.window.end, width)
        plausible_frame = f.aggregate_plausibility_frame(rows, self.fleet)
        return self._keep(integrity, rows), self._keep(c.check_plausibility(plausible_frame), plausible_frame)

    def all_raw(self) -> dict[str, c.CheckOutcome]:
        """Every concern that reads raw readings (what the daily report shows)."""
        self.readings()
        self.plausibility()
        self.completeness()
        self.gaps()
        self.stuck()
        self.freshness()
        self.missing_values()
        return self.outcomes


_COMPLETENESS_COLUMNS = ["device_id", "hour", "frames", "expected_frames", "completeness", "interval_s"]
