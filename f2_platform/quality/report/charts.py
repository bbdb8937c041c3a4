"""The report's charts, drawn from the report's numbers with matplotlib (no pyplot: no global state, safe in
threads) and embedded as PNG data URIs so the page reads offline.

Every chart labels both axes with their unit, and a legend sits outside the axes (right of them), never over
the data; tests/quality/test_report.py checks both on the drawn figures."""

from __future__ import annotations

import base64
import io
from datetime import datetime
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

_REASON_COLORS = [
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#86bcb6",
    "#d37295",
]


def data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _empty(figure: Figure, message: str) -> Figure:
    axes = figure.add_subplot()
    axes.text(0.5, 0.5, message, ha="center", va="center", fontsize=13, color="#2e7d32")
    axes.set_axis_off()
    return figure


def _legend_outside(axes: Axes, title: str | None = None) -> None:
    """The legend right of the axes, top-aligned with them: it never covers a bar (the page's image is cropped
    to what is drawn, legend included)."""
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, title=title)


def _hour_labels(report: dict[str, Any]) -> list[str]:
    return [datetime.fromisoformat(h).strftime("%H") for h in report["hours"]]


def completeness_heatmap(report: dict[str, Any]) -> Figure:
    devices = report["devices"]
    figure = Figure(figsize=(11, max(2.2, 0.42 * len(devices) + 1.4)))
    if not devices:
        return _empty(figure, "no periodic devices in scope")
    values = np.array([[np.nan if v is None else v for v in d["hourly_completeness"]] for d in devices], dtype=float)
    axes = figure.add_subplot()
    colormap = ListedColormap(["#b71c1c", "#e53935", "#fb8c00", "#fdd835", "#c0ca33", "#43a047"]).with_extremes(
        bad="#d0d0d0"
    )
    image = axes.imshow(
        np.ma.masked_invalid(values), aspect="auto", cmap=colormap, vmin=0.0, vmax=1.0, interpolation="nearest"
    )
    axes.set_yticks(range(len(devices)), [f"{d['device_name']} (#{d['device_id']})" for d in devices], fontsize=8)
    axes.set_xticks(range(len(report["hours"])), _hour_labels(report), fontsize=8)
    axes.set_xlabel("hour of the day (UTC)")
    axes.set_ylabel("device (#id)")
    axes.set_title("Completeness: share of expected frames per device and hour")
    colorbar = figure.colorbar(image, ax=axes, fraction=0.025, pad=0.01)
    colorbar.set_label("frames present / expected (0 to 1)")
    return figure


def out_of_range_chart(report: dict[str, Any]) -> Figure:
    rows = report["out_of_range"]["by_datapoint"]
    figure = Figure(figsize=(9, max(2.2, 0.5 * len(rows) + 1.3)))
    if not rows:
        return _empty(figure, "no reading outside its plausible range")
    axes = figure.add_subplot()
    labels = [f"{r['template']} · {r['label']}" for r in rows]
    below = [r["below"] for r in rows]
    above = [r["above"] for r in rows]
    positions = np.arange(len(rows))
    axes.barh(positions, below, color="#1e88e5", label="below min")
    axes.barh(positions, above, left=below, color="#e53935", label="above max")
    for y, r in zip(positions, rows, strict=True):
        axes.text(r["total"], float(y), f" {r['total']}", va="center", fontsize=9)
    axes.set_yticks(positions, labels, fontsize=9)
    axes.invert_yaxis()
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlim(0, max(r["total"] for r in rows) * 1.15)  # room for the totals printed after the bars
    axes.set_xlabel("readings outside the plausible range (count)")
    axes.set_ylabel("template · datapoint")
    axes.set_title("Out-of-range readings by datapoint")
    _legend_outside(axes)
    return figure


def dead_letters_chart(report: dict[str, Any]) -> Figure:
    dead = report["dead_letters"]
    figure = Figure(figsize=(11, 3.6))
    if not dead["available"]:
        return _empty(figure, f"dead letters unavailable: {dead['error']}")
    if not dead["total"]:
        return _empty(figure, "no dead letters this day")
    axes = figure.add_subplot()
    reasons = list(dead["by_reason"])
    positions = np.arange(len(dead["by_hour"]))
    bottom = np.zeros(len(positions))
    for i, reason in enumerate(reasons):
        counts = np.array([h["counts"].get(reason, 0) for h in dead["by_hour"]], dtype=float)
        axes.bar(
            positions,
            counts,
            bottom=bottom,
            color=_REASON_COLORS[i % len(_REASON_COLORS)],
            label=f"{reason} ({dead['by_reason'][reason]})",
        )
        bottom += counts
    axes.set_xticks(positions, _hour_labels(report), fontsize=8)
    axes.set_xlabel("hour of the day (UTC)")
    axes.set_ylabel("dead letters per hour (count)")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title("Dead letters by reason over the day")
    _legend_outside(axes, title="reason (day total)")
    return figure


def silent_devices_chart(report: dict[str, Any]) -> Figure:
    silent = report["silent_devices"]
    figure = Figure(figsize=(9, max(2.2, 0.5 * len(silent) + 1.3)))
    if not silent:
        return _empty(figure, "no silent device")
    axes = figure.add_subplot()
    positions = np.arange(len(silent))
    hours = [(s["silent_for_s"] or 0) / 3600 for s in silent]
    axes.barh(positions, hours, color="#8e24aa")
    for y, s, h in zip(positions, silent, hours, strict=True):
        axes.text(
            h,
            float(y),
            f" {h:.1f} h (last {s['last_seen'][11:16] if s['last_seen'] else '?'} UTC)",
            va="center",
            fontsize=9,
        )
    axes.set_yticks(positions, [f"{s['device_name']} (#{s['device_id']})" for s in silent], fontsize=9)
    axes.invert_yaxis()
    axes.set_xlabel(f"time without a reading at {report['observed_until'][:16]} UTC (hours)")
    axes.set_ylabel("device (#id)")
    axes.set_title("Silent devices")
    axes.set_xlim(0, max(hours) * 1.35 if hours else 1)
    return figure


CHARTS = {
    "completeness": ("Completeness heatmap (device x hour)", completeness_heatmap),
    "out_of_range": ("Out-of-range readings by datapoint", out_of_range_chart),
    "dead_letters": ("Dead letters by reason over the day", dead_letters_chart),
    "silent_devices": ("Silent devices", silent_devices_chart),
}


_KIND_COLORS = {"state": "#4e79a7", "access": "#f28e2b", "indicator": "#bab0ac", "presence": "#e15759"}


def events_by_hour_chart(report: dict[str, Any]) -> Figure:
    events = report["events"]
    figure = Figure(figsize=(11, 3.6))
    if not events["total"]:
        return _empty(figure, "no events this day")
    axes = figure.add_subplot()
    positions = np.arange(len(events["by_hour"]))
    bottom = np.zeros(len(positions))
    for kind, total in events["by_kind"].items():
        if not total:
            continue
        counts = np.array([h["counts"].get(kind, 0) for h in events["by_hour"]], dtype=float)
        axes.bar(positions, counts, bottom=bottom, color=_KIND_COLORS.get(kind, "#9c755f"), label=f"{kind} ({total})")
        bottom += counts
    axes.set_xticks(
        positions, [datetime.fromisoformat(h["hour"]).strftime("%H") for h in events["by_hour"]], fontsize=8
    )
    axes.set_xlabel("hour of the day (UTC)")
    axes.set_ylabel("events per hour (count)")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title("Access, alarm and presence events by kind over the day")
    _legend_outside(axes, title="kind (day total)")
    return figure


def access_chart(report: dict[str, Any]) -> Figure:
    readers = report["events"]["access"]["by_reader"]
    figure = Figure(figsize=(9, max(2.2, 0.5 * len(readers) + 1.3)))
    if not readers:
        return _empty(figure, "no access attempt this day")
    axes = figure.add_subplot()
    positions = np.arange(len(readers))
    axes.barh(positions - 0.2, [r["attempts"] for r in readers], height=0.4, color="#f28e2b", label="attempts")
    axes.barh(
        positions + 0.2,
        [r["distinct_credentials"] for r in readers],
        height=0.4,
        color="#4e79a7",
        label="distinct credentials",
    )
    axes.set_yticks(
        positions, [f"{r['component']} · {r['controller_mac']} J{r['connector']}" for r in readers], fontsize=9
    )
    axes.invert_yaxis()
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("access attempts and distinct credentials (count)")
    axes.set_ylabel("reader · controller")
    axes.set_title("Access attempts by reader")
    _legend_outside(axes)
    return figure


def doors_chart(report: dict[str, Any]) -> Figure:
    events = report["events"]
    doors = events["doors"]
    figure = Figure(figsize=(9, max(2.2, 0.5 * len(doors) + 1.3)))
    if not doors:
        return _empty(figure, "no door opened this day")
    axes = figure.add_subplot()
    positions = np.arange(len(doors))
    axes.barh(positions - 0.2, [d["open_s"] / 60 for d in doors], height=0.4, color="#59a14f", label="open in the day")
    axes.barh(
        positions + 0.2,
        [d["longest_open_s"] / 60 for d in doors],
        height=0.4,
        color="#e15759",
        label="longest open run",
    )
    threshold = events["threshold_door_held_open_s"] / 60
    axes.axvline(
        threshold, color="#b71c1c", linestyle="--", linewidth=1, label=f"held-open threshold ({threshold:g} min)"
    )
    axes.set_yticks(
        positions, [f"{d['component']} · {d['controller_mac']} J{d['connector']}" for d in doors], fontsize=9
    )
    axes.invert_yaxis()
    axes.set_xlabel("time open (minutes)")
    axes.set_ylabel("door · controller")
    axes.set_title("Doors: time open and the longest open run")
    _legend_outside(axes)
    return figure


def outages_chart(report: dict[str, Any]) -> Figure:
    outages = report["events"]["outages"]
    figure = Figure(figsize=(9, max(2.2, 0.5 * len(outages) + 1.3)))
    if not outages:
        return _empty(figure, "no presence outage this day")
    by_controller: dict[str, list[float]] = {}
    for o in outages:
        by_controller.setdefault(o["controller_mac"], []).append(o["offline_in_day_s"] / 60)
    axes = figure.add_subplot()
    names = sorted(by_controller)
    positions = np.arange(len(names))
    minutes = [sum(by_controller[n]) for n in names]
    axes.barh(positions, minutes, color="#e15759")
    for y, n, m in zip(positions, names, minutes, strict=True):
        axes.text(m, float(y), f" {m:.0f} min, {len(by_controller[n])} outage(s)", va="center", fontsize=9)
    axes.set_yticks(positions, names, fontsize=9)
    axes.invert_yaxis()
    axes.set_xlim(0, max(minutes) * 1.45 if max(minutes) > 0 else 1)
    axes.set_xlabel("time offline in the day (minutes)")
    axes.set_ylabel("controller (MAC)")
    axes.set_title("Presence outages")
    return figure


# The events section's charts, drawn from report["events"] (a report written before the section had none).
EVENT_CHARTS = {
    "events_by_hour": ("Events by kind over the day", events_by_hour_chart),
    "access": ("Access attempts by reader", access_chart),
    "doors": ("Doors: time open and held open", doors_chart),
    "outages": ("Presence outages", outages_chart),
}


def render_charts(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    """chart id -> {"title", "uri"} for every chart of the report."""
    charts = dict(CHARTS) | (EVENT_CHARTS if "events" in report else {})
    return {key: {"title": title, "uri": data_uri(draw(report))} for key, (title, draw) in charts.items()}
