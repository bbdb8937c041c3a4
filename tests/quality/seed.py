"""The seeded day: devices of our own, readings with known defects, dead letters, and what every check
must find, computed here in plain Python from the seeded rows (never from the SQL under test)."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from f2_platform.registry.sample import DatapointSpec, TemplateSpec

MAC = "d0c0ffee0601"  # the seeded day's controller
OTHER_MAC = "d0c0ffee0699"  # dead letters of a controller outside the report's scope
INTERVAL_S = 30
FRAMES_PER_DAY = 86400 // INTERVAL_S
TEMPLATE = TemplateSpec(
    "DQ-ENV",
    "DQ-ENV",
    "data-quality test sensor",
    "Sensor",
    "modbus-crc16",
    INTERVAL_S,
    (
        DatapointSpec("Temperature", "Int16", 3, 2, 2, " °C", -40, 85),
        DatapointSpec("Humidity", "Uint16", 5, 2, 2, " %", 0, 100),
        DatapointSpec("CO2", "Uint16", 7, 2, 0, " ppm", 300, 10000),
    ),
)
RANGES = {dp.label: (dp.min_value, dp.max_value) for dp in TEMPLATE.datapoints}

# name -> (connector, position, template)
REFERENCE, OUT_OF_RANGE, SILENT, GAP, STUCK, CLOCK_AHEAD, DOOR = (
    "DQ Reference",
    "DQ Out-of-range",
    "DQ Silent",
    "DQ Gap",
    "DQ Stuck",
    "DQ Clock ahead",
    "DQ Door",
)
WIRING = {
    REFERENCE: (1, 1, TEMPLATE.name),
    OUT_OF_RANGE: (1, 2, TEMPLATE.name),
    SILENT: (1, 3, TEMPLATE.name),
    GAP: (1, 4, TEMPLATE.name),
    STUCK: (2, 1, TEMPLATE.name),
    CLOCK_AHEAD: (2, 2, TEMPLATE.name),
    DOOR: (3, 1, "DS-2"),  # a status device: reports on change, never late, incomplete or stuck
}

SILENT_FROM = timedelta(hours=15)
GAP_HOURS = (timedelta(hours=10), timedelta(hours=12))
STUCK_HOURS = (timedelta(hours=6), timedelta(hours=12))
STUCK_VALUE = 21.25
# (label, first frame index, frames, value): implausible values on the out-of-range device
IMPLAUSIBLE = (("Temperature", 960, 4, 120.0), ("Humidity", 1680, 3, 104.5), ("CO2", 2400, 2, 250.0))
FUTURE_FRAMES = 5

Reading = tuple[datetime, int, int, float]


def normal_values(k: int, phase: int) -> dict[str, float]:
    """A day curve with a deterministic jitter: consecutive values practically never repeat."""
    angle = 2 * math.pi * (k + phase) / FRAMES_PER_DAY
    jitter = ((k * 7919 + phase * 104729) % 97) / 100
    return {
        "Temperature": round(21.0 + 3.0 * math.sin(angle) + jitter / 10, 2),
        "Humidity": round(45.0 + 8.0 * math.cos(angle) + jitter / 5, 2),
        "CO2": float(round(650 + 250 * math.sin(angle + 1.0) + (k * 31 % 17))),
    }


@dataclass
class SeededDay:
    day: date
    devices: dict[str, int]  # name -> device_id
    datapoints: dict[str, int]  # label -> datapoint_id of the DQ-ENV template
    door_datapoints: dict[str, int]
    now: datetime
    readings: list[Reading] = field(default_factory=list)
    future: list[Reading] = field(default_factory=list)
    dead_letters: list[tuple[datetime, str, str]] = field(default_factory=list)  # (timestamp, reason, mac)

    @property
    def start(self) -> datetime:
        return datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)

    @property
    def device_ids(self) -> list[int]:
        return sorted(self.devices.values())

    def build(self) -> None:
        labels = {v: k for k, v in self.datapoints.items()}
        assert len(labels) == 3
        for phase, name in enumerate((REFERENCE, OUT_OF_RANGE, SILENT, GAP, STUCK, CLOCK_AHEAD)):
            device_id = self.devices[name]
            for k in range(FRAMES_PER_DAY):
                offset = timedelta(seconds=k * INTERVAL_S)
                if name == SILENT and offset >= SILENT_FROM:
                    break
                if name == GAP and GAP_HOURS[0] <= offset < GAP_HOURS[1]:
                    continue
                values = normal_values(k, phase * 97)
                if name == STUCK and STUCK_HOURS[0] <= offset < STUCK_HOURS[1]:
                    values["Temperature"] = STUCK_VALUE
                if name == OUT_OF_RANGE:
                    for label, first, count, value in IMPLAUSIBLE:
                        if first <= k < first + count:
                            values[label] = value
                for label, value in values.items():
                    self.readings.append((self.start + offset, device_id, self.datapoints[label], value))
        # The door reports on change only: four changes in the day.
        door = self.devices[DOOR]
        for i, hour in enumerate((7, 9, 18, 22)):
            at = self.start + timedelta(hours=hour, minutes=13)
            self.readings.append((at, door, self.door_datapoints["door-sensor-1"], float(i % 2)))
        # A controller whose clock runs two days ahead.
        first_future = (self.now + timedelta(days=2)).replace(microsecond=0)
        for k in range(FRAMES_PER_DAY - FUTURE_FRAMES, FRAMES_PER_DAY):
            at = first_future + timedelta(seconds=(k - FRAMES_PER_DAY + FUTURE_FRAMES) * INTERVAL_S)
            for label, value in normal_values(k, 5 * 97).items():
                self.future.append((at, self.devices[CLOCK_AHEAD], self.datapoints[label], value))
        s = self.start
        self.dead_letters = [
            (s + timedelta(hours=2, minutes=10), "crc", MAC),
            (s + timedelta(hours=2, minutes=20), "crc", MAC),
            (s + timedelta(hours=9, minutes=5), "crc", MAC),
            (s + timedelta(hours=13, minutes=30), "bad-hex", MAC),
            (s + timedelta(hours=13, minutes=31), "bad-hex", MAC),
            (s + timedelta(hours=23, minutes=59, seconds=59), "unknown-connector", MAC),
            # Outside the window, or of a controller outside the scope: never counted.
            (s - timedelta(seconds=1), "crc", MAC),
            (self.end, "crc", MAC),
            (s + timedelta(hours=5), "crc", OTHER_MAC),
            (s + timedelta(hours=5, minutes=1), "frame-length", OTHER_MAC),
        ]


# --- what the checks must find, computed from the seeded rows -------------------------------------------


def periodic(seeded: SeededDay) -> dict[str, int]:
    return {name: i for name, i in seeded.devices.items() if name != DOOR}


def expected_out_of_range(seeded: SeededDay) -> dict[str, dict[str, int]]:
    """label -> {"below", "above"} over the day's readings of the DQ-ENV devices."""
    labels = {v: k for k, v in seeded.datapoints.items()}
    counts: dict[str, Counter[str]] = {}
    for _, _, datapoint, value in seeded.readings:
        label = labels.get(datapoint)
        if label is None:
            continue
        low, high = RANGES[label]
        if low is not None and value < low:
            counts.setdefault(label, Counter())["below"] += 1
        if high is not None and value > high:
            counts.setdefault(label, Counter())["above"] += 1
    return {label: {"below": c["below"], "above": c["above"]} for label, c in counts.items()}


def expected_implausible_series_hours(seeded: SeededDay) -> set[tuple[int, int, datetime]]:
    labels = {v: k for k, v in seeded.datapoints.items()}
    found = set()
    for at, device, datapoint, value in seeded.readings:
        label = labels.get(datapoint)
        if label is None:
            continue
        low, high = RANGES[label]
        if (low is not None and value < low) or (high is not None and value > high):
            found.add((device, datapoint, at.replace(minute=0, second=0, microsecond=0)))
    return found


def frames_by_device(seeded: SeededDay) -> dict[int, list[datetime]]:
    frames: dict[int, set[datetime]] = {}
    for at, device, _, _ in seeded.readings:
        frames.setdefault(device, set()).add(at)
    return {d: sorted(ts) for d, ts in frames.items()}


def expected_hourly_completeness(seeded: SeededDay) -> dict[tuple[int, datetime], float]:
    per_hour = 3600 / INTERVAL_S
    counts: Counter[tuple[int, datetime]] = Counter()
    for device, stamps in frames_by_device(seeded).items():
        for at in stamps:
            counts[(device, at.replace(minute=0, second=0, microsecond=0))] += 1
    out = {}
    for device in periodic(seeded).values():
        for h in range(24):
            hour = seeded.start + timedelta(hours=h)
            out[(device, hour)] = min(1.0, counts[(device, hour)] / per_hour)
    return out


def expected_low_hours(seeded: SeededDay, min_share: float) -> set[tuple[int, datetime]]:
    return {key for key, share in expected_hourly_completeness(seeded).items() if share < min_share}


def expected_gaps(seeded: SeededDay, max_intervals: int) -> list[tuple[int, datetime, datetime]]:
    gaps = []
    periodic_ids = set(periodic(seeded).values())
    for device, stamps in frames_by_device(seeded).items():
        if device not in periodic_ids:
            continue
        for before, after in itertools.pairwise(stamps):
            if (after - before).total_seconds() > max_intervals * INTERVAL_S:
                gaps.append((device, before, after))
    return sorted(gaps)


def expected_stuck(seeded: SeededDay, min_s: float, min_samples: int) -> set[tuple[int, int, float]]:
    series: dict[tuple[int, int], list[tuple[datetime, float]]] = {}
    periodic_ids = set(periodic(seeded).values())
    for at, device, datapoint, value in seeded.readings:
        if device in periodic_ids:
            series.setdefault((device, datapoint), []).append((at, value))
    stuck = set()
    for (device, datapoint), points in series.items():
        points.sort()
        run_start = 0
        for i in range(1, len(points) + 1):
            if i == len(points) or points[i][1] != points[run_start][1]:
                duration = (points[i - 1][0] - points[run_start][0]).total_seconds()
                if duration >= min_s and i - run_start >= min_samples:
                    stuck.add((device, datapoint, points[run_start][1]))
                run_start = i
    return stuck


def expected_silent(seeded: SeededDay, max_intervals: int) -> dict[int, datetime]:
    """device -> last reading, for devices quiet for more than max_intervals at the day's end."""
    silent = {}
    for name, device in periodic(seeded).items():
        last = max(at for at, d, _, _ in seeded.readings if d == device and at < seeded.end)
        if (seeded.end - last).total_seconds() > max_intervals * INTERVAL_S:
            silent[device] = last
        del name
    return silent


def expected_future(seeded: SeededDay, as_of: datetime, tolerance_s: int) -> int:
    return sum(1 for at, *_ in seeded.readings + seeded.future if at > as_of + timedelta(seconds=tolerance_s))


def expected_dead_letters(seeded: SeededDay) -> tuple[dict[str, int], dict[datetime, dict[str, int]]]:
    by_reason: Counter[str] = Counter()
    by_hour: dict[datetime, Counter[str]] = {}
    for at, reason, mac in seeded.dead_letters:
        if mac != MAC or not seeded.start <= at < seeded.end:
            continue
        by_reason[reason] += 1
        by_hour.setdefault(at.replace(minute=0, second=0, microsecond=0), Counter())[reason] += 1
    return dict(by_reason), {h: dict(c) for h, c in by_hour.items()}
