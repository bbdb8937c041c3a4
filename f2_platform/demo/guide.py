"""What `f2 demo up` prints when everything runs (pure): what the history loaded, where to click in Dagster,
and commands to try that work as printed in a new shell, with no virtual environment activated.

Every command line starts with "  $ ". The first activates the virtual environment `f2` runs from (its
absolute path); the next exports the stack settings that differ from their defaults, so `f2` in the new shell
finds this stack (another state folder, other ports); the rest are plain commands.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from f2_platform.demo.plan import HistoryRecord
from f2_platform.settings import StackSettings

PROMPT = "  $ "
# The stack settings that tell `f2` where the stack is; the others (Kafka's heap, partitions) do not matter to
# a command that connects to it.
_LOCATING: tuple[str, ...] = ("state_dir", "host", "postgres_port", "redis_port", "mqtt_port", "mqtt_tls_port")
_LOCATING += ("kafka_port", "kafka_controller_port", "enroll_port")


def stack_exports(settings: StackSettings) -> dict[str, str]:
    """F2_* variables (name -> value) of the stack settings that differ from their defaults."""
    exports = {}
    for name in _LOCATING:
        declared = StackSettings.model_fields[name]
        value = getattr(settings, name)
        if value != declared.default:
            alias = declared.validation_alias
            exports[alias if isinstance(alias, str) else f"F2_STACK_{name.upper()}"] = str(value)
    return exports


@dataclass(frozen=True)
class DemoEndpoints:
    host: str
    bridge_port: int
    processor_port: int
    sink_port: int
    dagster_url: str | None  # None: Dagster not started
    logs: Path


def commands(activate: Path | None, exports: dict[str, str], endpoints: DemoEndpoints) -> list[str]:
    """The commands to try, in order, for one new shell."""
    lines = []
    if activate is not None:
        lines.append(f"source {shlex.quote(str(activate))}")
    if exports:
        lines.append("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in exports.items()))
    host = endpoints.host
    lines += [
        'eval "$(f2 stack env)"',
        "f2 stack status",
        "psql \"$F2_TIMESERIES_DSN\" -c 'TABLE latest_values'",
        f"curl -s http://{host}:{endpoints.processor_port}/metrics | grep '^f2_messages'",
        f"curl -s http://{host}:{endpoints.sink_port}/healthz",
        f"tail -n 3 {shlex.quote(str(endpoints.logs / 'sink.log'))}",
    ]
    return lines


def history_lines(r: HistoryRecord, loaded_now: bool) -> list[str]:
    """What the history loaded and materialized."""
    hours = round(r.window.length.total_seconds() / 3600, 1)
    when = "loaded now" if loaded_now else "loaded by an earlier `f2 demo up`, not loaded again"
    lines = [
        f"History: {hours:g} h of the sample fleet, {r.window.label()} ({when}):",
        f"  {r.messages} messages through MQTT -> bridge -> Kafka -> processor -> sink, {r.readings} readings, "
        f"{r.events} events; decoded_data and device_events match the simulator's ledger exactly",
    ]
    m = r.materialized or {}
    names = ("hourly", "daily", "events_hourly", "events_daily", "report", "recent")
    hourly, daily, events_hourly, events_daily, report, recent = (m.get(k) or {} for k in names)
    for asset, tally in (("readings_hourly", hourly), ("events_hourly", events_hourly)):
        if tally:
            lines.append(f"  {asset}: {len(tally['materialized'])} partitions materialized ({_checks(tally)})")
    for asset, tally in (("readings_daily", daily), ("events_daily", events_daily)):
        if tally:
            lines.append(f"  {asset}: {', '.join(tally['materialized']) or 'none'} ({_checks(tally)})")
    for day, html in (m.get("reports") or {}).items():
        lines.append(f"  data_quality_report {day}: {html}")
    if recent:
        lines.append(f"  decoded_data: checks on the most recent readings ({_checks(recent)})")
    tallies = {
        "readings_hourly": hourly,
        "readings_daily": daily,
        "events_hourly": events_hourly,
        "events_daily": events_daily,
        "data_quality_report": report,
        "decoded_data": recent,
    }
    failed = [f"{asset} {key}" for asset, tally in tallies.items() for key in tally.get("failed", [])]
    if failed:
        lines.append(
            f"  runs that did not succeed (a blocking check failed, or an error; see Runs): {', '.join(failed)}"
        )
    return lines


def _checks(tally: dict[str, Any]) -> str:
    passed, warned, failed = tally["checks_passed"], tally["checks_warned"], tally["checks_failed"]
    return f"checks: {passed} passed, {warned} warned, {failed} failed"


def where_to_click(dagster_url: str, with_history: bool) -> list[str]:
    lines = [
        f"Where to click in Dagster, {dagster_url} (it answers once the code location has loaded, about a minute):",
        "  Lineage (left): the Kafka topics and decoded_data feeding the aggregates, the report and storage policy",
    ]
    if with_history:
        lines += [
            "  Catalog > readings_hourly > Partitions: the loaded hours, materialized",
            "  Catalog > readings_hourly > Checks: aggregate_integrity, plausible_values, completeness of each hour",
            "  Catalog > readings_daily > Checks: completeness, gaps, stuck sensors, silent devices of the day",
            "  Catalog > events_hourly > Checks: events_valid, event_aggregates, door_held_open (warns: the sample"
            " fleet's doors stand open for minutes), reader_flood",
            "  Catalog > data_quality_report > Overview: the day's summary; report_html is the page to open",
            "  Catalog > readings_hourly > Overview > Metadata > Plots: rows and samples per partition",
            "  Runs: the history's runs (tag f2/trigger=demo-history)",
        ]
    else:
        lines.append("  the first hourly aggregate appears at five past the next hour (--history 24h loads past hours)")
    return lines


def guide(
    endpoints: DemoEndpoints,
    activate: Path | None,
    exports: dict[str, str],
    history: list[str],
    live_interval_s: float,
) -> str:
    """The whole text `f2 demo up` prints at its end."""
    out = ["", "The F2 platform is running."]
    if history:
        out += ["", *history]
    out.append(f"Live traffic continues: the sample fleet sends one frame per sensor every {live_interval_s:g} s.")
    if endpoints.dagster_url is not None:
        out += ["", *where_to_click(endpoints.dagster_url, bool(history))]
    else:
        out += ["", "Dagster: not started (--without-dagster)."]
    h = endpoints.host
    out += [
        "",
        "Try in a new shell (no virtual environment needed: the first line activates it):",
        *(PROMPT + line for line in commands(activate, exports, endpoints)),
        "",
        f"Metrics: http://{h}:{endpoints.bridge_port}/metrics (bridge), http://{h}:{endpoints.processor_port}/metrics"
        f" (processor), http://{h}:{endpoints.sink_port}/metrics (sink); /healthz on each",
        f"Logs: {endpoints.logs}/ (one file per process, JSON lines)",
        "Stop with: make stop (f2 demo down; data stays). Something wrong: docs/troubleshooting.md",
    ]
    return "\n".join(out)
