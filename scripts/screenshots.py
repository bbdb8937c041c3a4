#!/usr/bin/env python3
"""Screenshots of the running demo for the README and docs/ (docs/images/*.png), with headless Chromium.

Run after `make demo` has loaded its history (the pictures need materialized partitions, check results and a
report), from the checkout:

    make screenshots                                    # or: .venv/bin/python scripts/screenshots.py
    .venv/bin/python scripts/screenshots.py --url http://127.0.0.1:3000 --out docs/images

It opens the Dagster UI of the demo (F2_DAGSTER_UI_PORT, default 3000) and the newest data-quality report under
$F2_STATE_DIR/reports/data-quality, waits on each page for the text that shows its data has arrived (never a
fixed sleep alone), and fails naming the page when that text does not come. Chromium is the system's
(/usr/bin/chromium, installed by provisioning); playwright, a development dependency, only drives it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.sync_api import FloatRect, ViewportSize

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]
VIEWPORT: ViewportSize = {"width": 1600, "height": 1000}
GRAPH_VIEWPORT: ViewportSize = {"width": 2200, "height": 2000}
REPORT_VIEWPORT: ViewportSize = {"width": 1400, "height": 1250}
WAIT_MS = 120_000  # the code location may still be loading when the demo has just started
EXPANDED_GROUPS = ("streaming", "aggregates", "data_quality", "storage_policy")
GRAPH_SELECTION = "not group:analytics"
# Assets at the graph's far edges (the crop keeps them and their boxes).
GRAPH_CORNERS = ("f2_raw", "f2_deadletter", "timeseries_retention", "decoded_data_compression")


@dataclass(frozen=True)
class Shot:
    name: str  # file name under --out, without .png
    what: str
    # (page, base URL) -> the region to keep (x, y, width, height), or None for the whole viewport; leaves
    # the page ready for the picture
    take: Callable[[Any, str], FloatRect | None]


def _text(page: Any, text: str, exact: bool = True) -> None:
    page.get_by_text(text, exact=exact).first.wait_for(timeout=WAIT_MS)


def _scroll_to_top(page: Any, heading: str) -> None:
    """Scroll so that the section `heading` starts at the top of the picture."""
    page.get_by_text(heading, exact=True).first.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)


def _metadata_plots(page: Any, base: str, asset: str, metric: str) -> None:
    page.set_viewport_size(VIEWPORT)
    page.goto(f"{base}/assets/{asset}", wait_until="domcontentloaded")
    page.get_by_text("Metadata", exact=True).first.wait_for(timeout=WAIT_MS)
    page.get_by_role("button", name="Plots").first.click()
    _text(page, metric)
    _scroll_to_top(page, "Metadata")
    _no_spinner(page)


def _no_spinner(page: Any) -> None:
    """Dagster shows spinners while it loads a panel: wait until none is left."""
    page.wait_for_function(
        "() => !document.querySelector('[role=progressbar], [class*=Spinner], [class*=spinner]')", timeout=WAIT_MS
    )
    page.wait_for_timeout(1500)  # charts animate in


def asset_graph(page: Any, base: str) -> FloatRect | None:
    # The global lineage, its groups expanded (the UI's own URL for that view); the dbt models (analytics)
    # left out: with them the graph is drawn too small to show each asset's status.
    groups = ",".join(f"global@global:{g}" for g in EXPANDED_GROUPS)
    page.set_viewport_size(GRAPH_VIEWPORT)
    page.goto(f"{base}/asset-groups~{quote(GRAPH_SELECTION)}/?expanded={quote(groups)}", wait_until="domcontentloaded")
    for name in ("f2_raw", "decoded_data", "readings_hourly", "readings_daily", "data_quality_report"):
        _text(page, name)
    _text(page, "Asset checks", exact=False)
    _hide_group_tree(page)
    _no_spinner(page)
    # The graph's extent (its group boxes' titles and assets' names), with a margin: the rest is empty canvas.
    boxes = []
    for name in (*EXPANDED_GROUPS, *GRAPH_CORNERS):
        box = page.get_by_text(name, exact=True).locator("visible=true").last.bounding_box()
        if box:
            boxes.append(box)
    x0, y0 = min(b["x"] for b in boxes) - 60, min(b["y"] for b in boxes) - 60
    x1 = max(b["x"] + b["width"] for b in boxes) + 220
    y1 = max(b["y"] + b["height"] for b in boxes) + 200
    x0, y0 = max(0.0, x0), max(0.0, y0)
    return FloatRect(x=x0, y=y0, width=x1 - x0, height=y1 - y0)


def _hide_group_tree(page: Any) -> None:
    """The group tree left of the graph takes a third of the picture: its toggle sits left of the search."""
    jump = page.get_by_placeholder("Jump to…")
    if not jump.count() or not jump.first.is_visible():
        return
    box = jump.first.bounding_box()
    buttons = page.locator("button").locator("visible=true")
    for i in range(buttons.count()):
        b = buttons.nth(i).bounding_box()
        if b and abs(b["y"] - box["y"]) < 12 and 0 < b["x"] - (box["x"] + box["width"]) < 60:
            buttons.nth(i).click()
            page.wait_for_timeout(1500)
            return


def hourly_partitions(page: Any, base: str) -> FloatRect | None:
    page.set_viewport_size(VIEWPORT)
    page.goto(f"{base}/assets/readings_hourly?view=partitions", wait_until="domcontentloaded")
    _text(page, "Materialized", exact=False)
    _no_spinner(page)
    return None


def _open_check(page: Any, base: str, asset: str, check: str) -> None:
    """An asset's Checks tab with one check selected, once its latest execution shows."""
    page.set_viewport_size(VIEWPORT)
    page.goto(f"{base}/assets/{asset}?view=checks", wait_until="domcontentloaded")
    _text(page, check)
    page.get_by_text(check, exact=True).first.click()
    _text(page, "Latest execution")


def daily_checks(page: Any, base: str) -> FloatRect | None:
    # The day's checks: the blocking ones pass, completeness warns (the history covers part of the day).
    _open_check(page, base, "readings_daily", "completeness")
    _text(page, "failure_count")
    _no_spinner(page)
    return None


def event_checks(page: Any, base: str) -> FloatRect | None:
    # An hour's event checks: events_valid and event_aggregates_consistent pass, door_held_open warns (the
    # sample fleet's doors stand open for minutes) and names the doors.
    _open_check(page, base, "events_hourly", "door_held_open")
    # The latest execution is the current hour's, not evaluated yet: the history's hours are in the executions.
    page.get_by_text("Execution history", exact=True).first.click()
    _text(page, "Evaluation result")
    _text(page, "failure(s) in", exact=False)
    _no_spinner(page)
    return None


def hourly_plots(page: Any, base: str) -> FloatRect | None:
    _metadata_plots(page, base, "readings_hourly", "samples")
    return None


def report_asset(page: Any, base: str) -> FloatRect | None:
    page.set_viewport_size(VIEWPORT)
    page.goto(f"{base}/assets/data_quality_report", wait_until="domcontentloaded")
    _text(page, "report_html")
    _text(page, "Data quality", exact=False)
    _no_spinner(page)
    return None


def table_observations(page: Any, base: str) -> FloatRect | None:
    """What Grafana's freshness and volume panels show, as Dagster plots: decoded_data's observations."""
    _metadata_plots(page, base, "decoded_data", "newest_reading_age_s")
    return None


def topic_observations(page: Any, base: str) -> FloatRect | None:
    """What Grafana's consumer-lag panel shows, as Dagster plots: f2.raw's observations."""
    _metadata_plots(page, base, "kafka/f2_raw", "consumer_lag")
    return None


SHOTS = (
    Shot("dagster-asset-graph", "the asset lineage: topics, readings, aggregates, reports", asset_graph),
    Shot("dagster-hourly-partitions", "readings_hourly's partitions, the loaded hours materialized", hourly_partitions),
    Shot("dagster-daily-checks", "readings_daily's checks: passed and warned, with their metadata", daily_checks),
    Shot("dagster-event-checks", "events_hourly's checks: passed, and door_held_open warned", event_checks),
    Shot("dagster-hourly-plots", "readings_hourly's metadata plotted over its materializations", hourly_plots),
    Shot("dagster-report-asset", "the data-quality report asset with its summary", report_asset),
    Shot("dagster-table-observations", "decoded_data's observations: freshness, rows, size", table_observations),
    Shot("dagster-topic-observations", "f2.raw's observations: the processor's consumer lag", topic_observations),
)


def newest_report(state_dir: Path) -> Path:
    reports = sorted((state_dir / "reports" / "data-quality").glob("data-quality-*.html"))
    if not reports:
        raise SystemExit(f"no data-quality report under {state_dir}/reports/data-quality: run make demo first")
    return reports[-1]


def main(argv: list[str] | None = None) -> int:
    from f2_platform.settings import DagsterSettings, StackSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=f"http://127.0.0.1:{DagsterSettings().ui_port}", help="the Dagster UI")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="folder of the PNG files")
    parser.add_argument("--report", type=Path, default=None, help="report HTML (default: the newest of the demo)")
    parser.add_argument("--only", action="append", default=None, help="take only this picture (repeatable)")
    args = parser.parse_args(argv)
    report = args.report or newest_report(StackSettings().state_dir)
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    base = args.url.rstrip("/")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            for shot in SHOTS:
                if args.only and shot.name not in args.only:
                    continue
                try:
                    clip = shot.take(page, base)
                except Exception as exc:
                    raise SystemExit(f"{shot.name} ({shot.what}): the page did not show its data: {exc}") from None
                page.screenshot(path=str(args.out / f"{shot.name}.png"), clip=clip)
                print(f"{args.out / shot.name}.png: {shot.what}")
            if not args.only or "data-quality-report" in args.only:
                # The page's head: summary cards, checks and the completeness heatmap (its long tables below).
                page.set_viewport_size(REPORT_VIEWPORT)
                page.goto(report.as_uri(), wait_until="load")
                page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
                page.screenshot(path=str(args.out / "data-quality-report.png"))
                print(f"{args.out / 'data-quality-report'}.png: the daily report {report.name}")
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
