"""The simulator's own catalog, fleets, topics and ledger text agree with docs/domain.md, read here from the
document's tables (the source both the simulator and the platform's registry are written from)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from simulator.catalog import SAMPLE_CONTROLLERS, SAMPLE_WIRING, TEMPLATES, Wiring
from simulator.endpoints import device_time, topic_of
from simulator.fleet import generated_fleet, sample_fleet
from simulator.ledger import rfc3339

DOMAIN = Path(__file__).resolve().parents[2] / "docs" / "domain.md"


def _table(heading: str) -> list[list[str]]:
    """The rows (cells stripped of spaces and backticks) of the first table from `heading` on (a section
    heading, or the table's header line itself)."""
    text = DOMAIN.read_text()
    after = text[text.index(heading) :]
    rows = []
    for line in after.splitlines():
        if line.startswith("|"):
            rows.append([c.strip().strip("`") for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # without the header and its rule


def test_the_templates_are_the_documented_ones() -> None:
    documented: dict[str, list[tuple[str, str, int, int]]] = {}
    template = ""
    for row in _table("| template | datapoint (label) |"):
        template = row[0] or template
        documented.setdefault(template, []).append((row[1], row[2], int(row[3]), int(row[5])))
    ours = {
        name: [(d.label, d.encoding, d.offset, d.decimals) for d in t.datapoints]
        for name, t in TEMPLATES.items()
        if t.datapoints
    }
    assert ours == documented
    # Templates without datapoints (the reader) are in the templates' table, which says so.
    listed = {row[0].split(" ")[0]: row for row in _table("| template (model, description) |")}
    for name, t in TEMPLATES.items():
        assert name in listed
        if not t.datapoints:
            assert "no datapoints" in listed[name][4]


def test_the_sample_fleet_and_its_topics_are_the_documented_ones() -> None:
    rows = _table("### Wiring")
    wiring = [Wiring(r[0], int(r[1].removeprefix("J")), int(r[2]), r[3], r[4]) for r in rows]
    assert list(SAMPLE_WIRING) == wiring
    for w, row in zip(SAMPLE_WIRING, rows, strict=True):
        assert topic_of(w, TEMPLATES[w.template]) == row[5]
    controllers = [(r[0], r[1]) for r in _table("### Controllers")]
    assert list(SAMPLE_CONTROLLERS) == controllers
    assert sample_fleet().macs == [mac for _, mac in controllers]


def test_generated_fleets_keep_their_prefixes_and_shape() -> None:
    sim = generated_fleet(17)
    assert sim.macs[0] == "f25100000001" and sim.macs[16] == "f25100000011"
    bench = generated_fleet(3, "be5e", "Bench")
    assert bench.macs == ["be5e00000001", "be5e00000002", "be5e00000003"]
    assert bench.controllers[1] == ("Bench Controller 2", "be5e00000002")
    for fleet in (sim, bench):
        assert all(re.fullmatch(r"[0-9a-f]{12}", mac) for mac in fleet.macs)
        assert len(fleet.wiring) == 9 * len(fleet.controllers)
        assert len(fleet.unregistered) == len(fleet.controllers)
        per_controller = {(w.mac, w.connector, w.position) for w in fleet.wiring}
        assert len(per_controller) == len(fleet.wiring), "two devices on one pin"
        assert len({(w.mac, w.device) for w in fleet.wiring}) == len(fleet.wiring), "device names repeat"
        # The unregistered exit buttons publish at a pin the registry gives to the door sensors.
        assert all((w.mac, w.connector, w.position) in per_controller for w in fleet.unregistered)
    assert [(w.connector, w.position, w.device, w.template) for w in bench.wiring[:9]] == [
        (1, 1, "Bench 1 Env A", "ENV-S1"),
        (1, 2, "Bench 1 Env B", "ENV-S1"),
        (2, 1, "Bench 1 Door", "DS-2"),
        (3, 1, "Bench 1 Power", "PM-100"),
        (4, 1, "Bench 1 Pressure", "PS-1"),
        (2, 2, "Bench 1 Reader", "RD-1"),
        (3, 2, "Bench 1 Strike", "SK-1"),
        (4, 2, "Bench 1 Siren", "SR-1"),
        (1, 3, "Bench 1 Motion", "MS-1"),
    ]
    topics = [topic_of(w, TEMPLATES[w.template]) for w in (*bench.wiring[5:9], bench.unregistered[0])]
    assert topics == [
        "tele/f2-be5e00000001/access-control-mode/J2/reader-2",
        "stat/f2-be5e00000001/access-control-mode/J3/strike-2",
        "stat/f2-be5e00000001/alarm-mode/J4/siren-2",
        "stat/f2-be5e00000001/alarm-mode/J1/motion-sensor-3",
        "stat/f2-be5e00000001/access-control-mode/J2/exit-buttons",
    ]


def test_timestamps_are_written_as_devices_and_the_database_read_them() -> None:
    at = datetime(2026, 3, 1, 7, 8, 9, 123456, tzinfo=UTC)
    us = int(at.timestamp()) * 1_000_000 + at.microsecond
    assert rfc3339(us) == "2026-03-01T07:08:09.123456Z"
    assert rfc3339(us - at.microsecond) == "2026-03-01T07:08:09.000000Z"
    assert device_time(us) == "2026-03-01 07:08:09.123456"
