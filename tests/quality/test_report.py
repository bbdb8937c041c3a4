"""The daily report of the seeded day: its JSON sidecar holds exactly the seeded defects (computed here from
the seeded rows), its HTML page renders in headless Chromium with its charts and without any network, and
the Dagster asset writes the same report with a summary for the UI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner

from f2_platform.cli.report import report as report_group
from tests.quality import seed as s

pytestmark = pytest.mark.integration

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def written(quality_env, seeded: s.SeededDay, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("dq-cli")
    before = datetime.now(UTC)
    result = CliRunner().invoke(
        report_group,
        ["dq", "--date", seeded.day.isoformat(), "--controller", s.MAC, "--out", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.output.splitlines() if line.startswith(("html: ", "json: ")))
    html, sidecar = Path(lines["html"]), Path(lines["json"])
    assert html.parent == out and sidecar.parent == out
    return {
        "html": html,
        "json": sidecar,
        "report": json.loads(sidecar.read_text()),
        "before": before,
        "output": result.output,
    }


def _t(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


def test_sidecar_matches_the_seeded_defects(written: dict[str, Any], seeded: s.SeededDay) -> None:
    r = written["report"]
    assert (r["report"], r["day"], r["scope"]["controllers"]) == ("f2-data-quality", seeded.day.isoformat(), [s.MAC])
    as_of = _t(r["as_of"])
    assert written["before"] <= as_of <= datetime.now(UTC)
    assert _t(r["observed_until"]) == seeded.end
    names = {v: k for k, v in seeded.devices.items()}

    # Readings of the day, per device.
    day_readings = [x for x in seeded.readings if seeded.start <= x[0] < seeded.end]
    per_device = {d["device_id"]: d["readings"] for d in r["devices"]}
    assert per_device == {i: sum(1 for x in day_readings if x[1] == i) for i in s.periodic(seeded).values()}
    assert r["summary"]["readings"] == sum(per_device.values())

    # Out of range, by datapoint.
    expected_range = s.expected_out_of_range(seeded)
    found_range = {d["label"]: {"below": d["below"], "above": d["above"]} for d in r["out_of_range"]["by_datapoint"]}
    assert found_range == expected_range
    assert r["summary"]["out_of_range_readings"] == sum(v["below"] + v["above"] for v in expected_range.values()) == 9

    # Silent at the day's end.
    silent = s.expected_silent(seeded, r["thresholds"]["silent_after_intervals"])
    assert {d["device_id"]: _t(d["last_seen"]) for d in r["silent_devices"]} == silent
    assert [names[d["device_id"]] for d in r["silent_devices"]] == [s.SILENT]
    assert r["silent_devices"][0]["silent_for_s"] == (seeded.end - silent[seeded.devices[s.SILENT]]).total_seconds()

    # The two-hour gap.
    gaps = [(g["device_id"], _t(g["start"]), _t(g["end"])) for g in r["gaps"]]
    assert gaps == s.expected_gaps(seeded, r["thresholds"]["gap_after_intervals"])
    assert r["gaps"][0]["missed_frames"] == 2 * 3600 // s.INTERVAL_S

    # The stuck sensor.
    stuck = {(x["device_id"], x["datapoint_id"], x["value"]) for x in r["stuck"]}
    assert stuck == s.expected_stuck(seeded, r["thresholds"]["stuck_after_s"], r["thresholds"]["stuck_min_samples"])
    assert [(names[x["device_id"]], x["label"]) for x in r["stuck"]] == [(s.STUCK, "Temperature")]

    # Readings from the future.
    future = s.expected_future(seeded, as_of, r["thresholds"]["future_tolerance_s"])
    assert r["future_readings"]["total"] == future == s.FUTURE_FRAMES * 3
    assert [(names[d["device_id"]], d["count"]) for d in r["future_readings"]["by_device"]] == [(s.CLOCK_AHEAD, future)]

    # Completeness per device and hour.
    expected_shares = s.expected_hourly_completeness(seeded)
    hours = [_t(h) for h in r["hours"]]
    assert hours == [seeded.start + timedelta(hours=h) for h in range(24)]
    for device in r["devices"]:
        assert device["hourly_completeness"] == [expected_shares[(device["device_id"], h)] for h in hours]
    low = {(h["device_id"], _t(h["hour"])) for h in r["completeness"]["low_hours"]}
    assert low == s.expected_low_hours(seeded, r["thresholds"]["min_completeness"])

    # Dead letters of the day, by reason and hour, of the seeded controller only.
    by_reason, by_hour = s.expected_dead_letters(seeded)
    assert r["dead_letters"]["available"] and r["dead_letters"]["complete"]
    assert r["dead_letters"]["by_reason"] == by_reason == {"crc": 3, "bad-hex": 2, "unknown-connector": 1}
    assert {_t(h["hour"]): h["counts"] for h in r["dead_letters"]["by_hour"] if h["counts"]} == by_hour

    # Checks and severities.
    checks = {c["name"]: (c["severity"], c["passed"]) for c in r["checks"]}
    assert checks == {
        "readings_valid": ("ERROR", False),
        "plausible_values": ("ERROR", False),
        "completeness": ("WARN", False),
        "reading_gaps": ("WARN", False),
        "stuck_sensors": ("WARN", False),
        "device_freshness": ("WARN", False),
        # The session's decoded_data is a fresh install's (value NOT NULL): no reading lacks a value here. An
        # adopted table's NULLs are reported in tests/integration/test_timeseries_adoption.py.
        "missing_values": ("WARN", True),
    }
    assert r["readings_without_value"] == {"total": 0} and r["summary"]["readings_without_value"] == 0
    assert r["summary"]["blocking_failures"] == ["readings_valid", "plausible_values"]
    assert r["summary"] | {} == r["summary"] and r["summary"]["dead_letters"] == 6
    assert "silent 1, out of range 9, from the future 15, gaps 1, stuck 1" in written["output"]


def test_page_renders_offline_in_chromium(written: dict[str, Any], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})

            def only_local(route: Any) -> None:
                url = route.request.url
                if url.startswith(("file://", "data:")):
                    route.continue_()
                else:
                    requested.append(url)
                    route.abort()

            page.route("**/*", only_local)
            page.goto(written["html"].as_uri(), wait_until="load")
            charts = page.evaluate("""() => [...document.querySelectorAll('img[data-chart]')].map(img => ({
                chart: img.dataset.chart, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
                shown: img.getBoundingClientRect().width, src: img.src.slice(0, 21)}))""")
            assert {c["chart"] for c in charts} == {
                "completeness",
                "out_of_range",
                "dead_letters",
                "silent_devices",
                # The events section's (placeholders here: the seeded controller sends no events).
                "events_by_hour",
                "access",
                "doors",
                "outages",
            }
            for chart in charts:
                assert chart["complete"] and chart["width"] > 300 and chart["height"] > 100, chart
                assert chart["shown"] > 300 and chart["src"] == "data:image/png;base64", chart
            text = page.inner_text("body")
            for expected in (s.SILENT, s.GAP, s.STUCK, s.CLOCK_AHEAD, "crc", "unknown-connector", "Temperature"):
                assert expected in text
            screenshot = tmp_path / "dq-report.png"
            page.locator("#chart-completeness").scroll_into_view_if_needed()
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 50_000
        finally:
            browser.close()
    assert requested == [], f"the page asked the network for {requested}"


def test_the_dagster_asset_writes_the_report(
    code_location: dg.Definitions, instance: dg.DagsterInstance, seeded: s.SeededDay, quality_env: dict[str, str]
) -> None:
    result = code_location.resolve_job_def("data_quality_report_job").execute_in_process(
        instance=instance, partition_key=seeded.day.isoformat()
    )
    assert result.success
    (materialization,) = [e.materialization for e in result.get_asset_materialization_events()]
    metadata = materialization.metadata
    html = Path(str(metadata["report_html"].value))
    assert html.parent == Path(quality_env["F2_QUALITY_REPORT_DIR"]) and html.exists()
    sidecar = json.loads(Path(str(metadata["report_json"].value)).read_text())
    assert sidecar["scope"]["controllers"] is None  # the schedule's report covers the whole fleet
    assert seeded.devices[s.SILENT] in {d["device_id"] for d in sidecar["silent_devices"]}
    assert metadata["report_url"].value == html.as_uri()
    summary = str(metadata["summary"].value)
    assert (
        summary.startswith(f"**Data quality {seeded.day.isoformat()}**") and "| plausible_values | ERROR |" in summary
    )
    assert metadata["silent_devices"].value == sidecar["summary"]["silent_devices"]


def test_charts_are_readable(written: dict[str, Any]) -> None:
    """Every chart of the seeded day (which has out-of-range readings, dead letters and a silent device, so no
    chart is an empty placeholder) labels each axis with its unit, keeps its legend off the data area, and the
    picture embedded in the page holds the legend (the crop is the drawn extent, legend included)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from f2_platform.quality.report.charts import CHARTS

    report = written["report"]
    legends = {}
    for key, (_, draw) in CHARTS.items():
        figure = draw(report)
        renderer = FigureCanvasAgg(figure).get_renderer()
        figure.draw(renderer)
        visible = [axes for axes in figure.axes if axes.axison]
        assert visible, f"{key}: no axes drawn (an empty placeholder?)"
        for axes in visible:
            colorbar = getattr(axes, "_colorbar", None)
            if colorbar is not None:
                assert axes.get_ylabel(), f"{key}: the colour scale has no label"
                continue
            assert axes.get_xlabel() and axes.get_ylabel(), f"{key}: axis without a label"
            for label in (axes.get_xlabel(), axes.get_ylabel()):
                # A unit or what is counted: "(count)", "(UTC)", "(hours)", "(#id)", or a named category.
                assert "(" in label or "·" in label, f"{key}: {label!r} names no unit"
            legend = axes.get_legend()
            if legend is None:
                continue
            legends[key] = legend
            box, area = legend.get_window_extent(renderer), axes.get_window_extent(renderer)
            apart = box.x0 >= area.x1 or box.x1 <= area.x0 or box.y0 >= area.y1 or box.y1 <= area.y0
            assert apart, f"{key}: the legend {box} covers the data area {area}"
            drawn = figure.get_tightbbox(renderer)
            dpi_box = box.transformed(figure.dpi_scale_trans.inverted())
            assert drawn.x1 >= dpi_box.x1 - 1e-6, f"{key}: the legend is cut off the picture"
    assert set(legends) == {"out_of_range", "dead_letters"}
    assert [t.get_text() for t in legends["dead_letters"].get_texts()] == [
        f"{reason} ({count})" for reason, count in report["dead_letters"]["by_reason"].items()
    ]
