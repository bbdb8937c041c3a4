"""The checks find exactly the seeded defects, each with its severity (scoped to the seeded controller, so
readings other tests share the database with never count)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from f2_platform.defs.resources import RegistryResource, TimescaleResource
from f2_platform.quality import checks as c
from f2_platform.quality.evaluation import WindowEvaluation
from f2_platform.quality.fleet import load_fleet
from f2_platform.quality.settings import QualitySettings
from f2_platform.quality.window import CheckWindow
from tests.quality import seed as s

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def evaluation(quality_env, seeded: s.SeededDay) -> WindowEvaluation:
    fleet = load_fleet(RegistryResource().fetch_all, [s.MAC])
    ev = WindowEvaluation(
        TimescaleResource(), fleet, CheckWindow.of_day(seeded.day, datetime.now(UTC)), QualitySettings()
    )
    ev.all_raw()
    return ev


def test_fleet_is_the_seeded_controller(evaluation: WindowEvaluation, seeded: s.SeededDay) -> None:
    assert sorted(evaluation.fleet.device_ids) == seeded.device_ids
    assert set(evaluation.fleet.cadenced()["device_id"]) == set(s.periodic(seeded).values())


def test_severities(evaluation: WindowEvaluation) -> None:
    severities = {name: o.severity for name, o in evaluation.outcomes.items()}
    assert severities == {
        "readings_valid": c.Severity.ERROR,
        "plausible_values": c.Severity.ERROR,
        "completeness": c.Severity.WARN,
        "reading_gaps": c.Severity.WARN,
        "stuck_sensors": c.Severity.WARN,
        "device_freshness": c.Severity.WARN,
        "missing_values": c.Severity.WARN,
    }
    # Every seeded defect fails its check. The session's decoded_data is a fresh install's (value NOT NULL), so
    # no reading lacks a value here; an adopted table's NULLs are found in test_timeseries_adoption.py.
    seeded_defects = {n: o for n, o in evaluation.outcomes.items() if n != "missing_values"}
    assert not any(o.passed for o in seeded_defects.values()), {n: o.summary() for n, o in seeded_defects.items()}
    assert evaluation.outcomes["missing_values"].passed


def test_out_of_range(evaluation: WindowEvaluation, seeded: s.SeededDay) -> None:
    outcome = evaluation.outcomes["plausible_values"]
    expected = s.expected_out_of_range(seeded)
    assert outcome.failure_count == sum(v["below"] + v["above"] for v in expected.values())
    found = {(int(r.device_id), int(r.datapoint_id), r.bucket.to_pydatetime()) for r in outcome.failures.itertuples()}
    assert found == s.expected_implausible_series_hours(seeded)


def test_future(evaluation: WindowEvaluation, seeded: s.SeededDay) -> None:
    outcome = evaluation.outcomes["readings_valid"]
    assert outcome.failure_count == s.expected_future(seeded, evaluation.window.as_of, 300) == 15
    assert set(outcome.failures["device_id"]) == {seeded.devices[s.CLOCK_AHEAD]}


def test_gaps(evaluation: WindowEvaluation, seeded: s.SeededDay) -> None:
    outcome = evaluation.outcomes["reading_gaps"]
    found = sorted(
        (int(r.device_id), r.gap_start.to_pydatetime(), r.gap_end.to_pydatetime())
        for r in outcome.failures.itertuples()
    )
    assert found == s.expected_gaps(seeded, 10)
    assert len(found) == 1 and found[0][0] == seeded.devices[s.GAP]


def test_stuck(evaluation: WindowEvaluation, seeded: s.SeededDay) -> None:
    outcome = evaluation.outcomes["stuck_sensors"]
    found = {(int(r.device_id), int(r.datapoint_id), float(r.value)) for r in outcome.failures.itertuples()}
    assert found == s.expected_stuck(seeded, 7200, 20)
    assert found == {(seeded.devices[s.STUCK], seeded.datapoints["Temperature"], s.STUCK_VALUE)}


def test_silent(evaluation: WindowEvaluation, seeded: s.SeededDay) -> None:
    outcome = evaluation.outcomes["device_freshness"]
    found = {int(r.device_id): r.last_seen.to_pydatetime() for r in outcome.failures.itertuples()}
    assert found == s.expected_silent(seeded, 10)
    assert list(found) == [seeded.devices[s.SILENT]]


def test_completeness(evaluation: WindowEvaluation, seeded: s.SeededDay) -> None:
    outcome = evaluation.outcomes["completeness"]
    found = {(int(r.device_id), r.hour.to_pydatetime()) for r in outcome.failures.itertuples()}
    assert found == s.expected_low_hours(seeded, 0.9)
    assert {d for d, _ in found} == {seeded.devices[s.SILENT], seeded.devices[s.GAP]}
