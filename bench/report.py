"""Writers: JSON (everything), a Markdown table (the README shows it) and PNG charts (throughput over time,
latency distribution)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.config import TARGETS
from bench.model import BenchResult, StageResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

JSON_NAME, MARKDOWN_NAME = "latest.json", "latest.md"
THROUGHPUT_PNG, LATENCY_PNG = "throughput.png", "latency.png"


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "ratio":
        return f"{100 * value:.0f}%"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()


def traffic_mix(cfg: dict[str, Any]) -> str:
    """What the MQTT load was made of (results from before events existed say frames only)."""
    share = float(cfg.get("event_share") or 0.0)
    if share <= 0:
        return "Traffic over MQTT: frames only."
    return (
        f"Traffic over MQTT (bridge, e2e, backpressure): {1 - share:.0%} sensor frames, {share:.0%} status and reader "
        "messages (events: door sensors, exit buttons, motion sensors, strikes, sirens, reader scans and light-"
        "indicator responses), each acknowledged message's readings and events reconciled; the processor and sink "
        "stages are pre-filled with frames only."
    )


def _verdict(passed: bool | None) -> str:
    return "-" if passed is None else ("**pass**" if passed else "**miss**")


def _ratios(ratios: dict[str, float]) -> str:
    return ", ".join(f"{v:.2f}x {k}" for k, v in ratios.items()) or "-"


def markdown(result: BenchResult, charts: Sequence[str] = (THROUGHPUT_PNG, LATENCY_PNG)) -> str:
    mc = result.machine
    cfg = result.config
    lines = [
        "# `f2 bench` results",
        "",
        f"Run {result.started_at} (until {result.finished_at}), commit `{mc.get('git_commit')}`.",
        f"Machine: {mc.get('usable_cores')} cores ({mc.get('cpu_model')}), {mc.get('memory_gb')} GB memory, "
        f"{mc.get('os')}, Python {mc.get('python')}; load average at start "
        f"{', '.join(str(x) for x in mc.get('load_average_at_start', []))}.",
        f"Each stage: {cfg.get('warmup_s')} s warm-up, then {cfg.get('duration_s')} s measured; "
        f"{'a hermetic stack started for the run' if cfg.get('hermetic') else 'the running stack'}; "
        f"fleet of {cfg.get('controllers')} controllers; {cfg.get('publishers')} publisher process(es); "
        f"{cfg.get('bridges')} bridge, {cfg.get('processors')} processor, "
        f"{cfg.get('sinks')} sink process(es); Kafka: {cfg.get('kafka_brokers', 1)} node(s), "
        f"{cfg.get('kafka_partitions')} partitions per topic.",
        traffic_mix(cfg),
        "",
    ]
    lines += [f"> {note}" for note in result.notes] + ([""] if result.notes else [])
    lines += [
        "## Throughput against the targets",
        "",
        "| stage | measure | value | target | result | ratio to references |",
        "|---|---|---|---|---|---|",
    ]
    for stage in result.stages:
        if stage.error:
            lines.append(f"| {stage.name} | failed: {stage.error.splitlines()[0][:150]} | | | | |")
        for m in stage.measures:
            lines.append(
                f"| {stage.name} | {m.name}{f' ({m.note})' if m.note else ''} | {_num(m.value, m.unit)} | "
                f"{m.target or '-'} | {_verdict(m.passed)} | {_ratios(m.ratios)} |"
            )
    lines += [
        "",
        "## CPU and memory per process (measurement window)",
        "",
        "| stage | process | role | CPU (cores) | CPU s per 1,000 | peak RSS | RSS target |",
        "|---|---|---|---|---|---|---|",
    ]
    for stage in result.stages:
        for p in stage.processes:
            if p.role == "service" and p.cpu_share < 0.005:
                continue
            per = "-" if p.cpu_s_per_1000 is None else f"{p.cpu_s_per_1000:.3f} ({stage.unit})"
            rss = "-" if p.role in ("other",) else f"{p.peak_rss_mb:.0f} MB"
            target = "-" if p.rss_target is None else f"{p.rss_target} {_verdict(p.rss_passed)}"
            lines.append(f"| {stage.name} | {p.name} | {p.role} | {p.cpu_share:.2f} | {per} | {rss} | {target} |")
    e2e = result.stage("e2e")
    if e2e and e2e.latency:
        p99_target = TARGETS["e2e_p99_at_50pct_s"]
        lines += [
            "",
            "## End-to-end latency (device timestamp to database commit)",
            "",
            "| load | offered frames/s | achieved | kept up | samples | p50 | p95 | p99 | max | "
            "sink histogram: within 1 s / p99 | reconciled |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for lat in e2e.latency:
            verdict = f" {_verdict(p99_target.check(lat.p99_s))} (target {p99_target.text})" if lat.level == 0.5 else ""
            rec = lat.reconciliation
            lines.append(
                f"| {lat.level:.0%} | {lat.offered_frames_per_s:,.0f} | {lat.achieved_frames_per_s:,.0f} | "
                f"{'yes' if lat.kept_up else 'no'} | {lat.samples} | {_num(lat.p50_s, 's')} | "
                f"{_num(lat.p95_s, 's')} | {_num(lat.p99_s, 's')}{verdict} | {_num(lat.max_s, 's')} | "
                f"{_num(lat.histogram_share_within_1s, 'ratio')} / {_num(lat.histogram_p99_s, 's')} | "
                f"{'yes' if rec and rec.ok else 'NO'} |"
            )
        lines.append(
            f"\nLatency resolution +/- {e2e.latency[0].resolution_s * 1000:.0f} ms (polling of a sample "
            "of devices' rows); the histogram column is the sink's own f2_end_to_end_latency_seconds."
        )
        hop_names = [h for lat in e2e.latency for h in lat.hops]
        hop_names = list(dict.fromkeys(hop_names))
        if hop_names:
            lines += [
                "",
                "Where it accrues (cumulative from the device timestamp, p50 / p99):",
                "",
                "| load | " + " | ".join(hop_names) + " |",
                "|---|" + "---|" * len(hop_names),
            ]
            for lat in e2e.latency:
                cells = [
                    f"{lat.hops[h]['p50']:.3f} / {lat.hops[h]['p99']:.3f} s" if h in lat.hops else "-"
                    for h in hop_names
                ]
                lines.append(f"| {lat.level:.0%} | " + " | ".join(cells) + " |")
    lines += ["", "## Reconciliation", ""]
    for stage in result.stages:
        for name, rec in stage.reconciliations.items():
            lines.append(
                f"- {stage.name}, {name}: {'ok' if rec.ok else 'FAILED'} "
                f"(expected {rec.expected:,}, observed {rec.observed:,}; {rec.detail})"
            )
        for lat in stage.latency:
            if lat.reconciliation is not None:
                rec = lat.reconciliation
                lines.append(
                    f"- {stage.name}, {lat.level:.0%} load: {'ok' if rec.ok else 'FAILED'} "
                    f"(expected {rec.expected:,}, observed {rec.observed:,}; {rec.detail})"
                )
    profiled = [(s, name, prof) for s in result.stages for name, prof in s.profiles.items()]
    if profiled:
        lines += [
            "",
            "## Profiles (share of CPU samples: py-spy for the daemons, perf for PostgreSQL's processes)",
            "",
            "`self`: the function running when sampled; `total`: anywhere on the stack. PostgreSQL's stripped"
            " binary names most but not all of its functions: `[unknown] in postgres` is the unnamed ones.",
            "",
        ]
        for _stage, name, prof in profiled:
            if prof.get("error"):
                lines.append(f"- {name}: {prof['error']}")
                continue
            lines += [
                f"### {name} ({prof.get('samples', 0)} samples)",
                "",
                "| self | function | | total | function |",
                "|---|---|---|---|---|",
            ]
            selfs, totals = prof.get("self", [])[:12], prof.get("total", [])[:12]
            for i in range(max(len(selfs), len(totals))):
                a = selfs[i] if i < len(selfs) else ("", "")
                b = totals[i] if i < len(totals) else ("", "")
                lines.append(f"| {a[1]}% | `{a[0]}` | | {b[1]}% | `{b[0]}` |")
            lines.append("")
    notes = [(s.name, n) for s in result.stages for n in s.notes]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {stage}: {note}" for stage, note in notes]
    lines += [
        "",
        f"Charts: {', '.join(f'[{name}]({name})' for name in charts) or 'none'}; "
        f"everything in [{JSON_NAME}]({JSON_NAME}).",
        "",
    ]
    return "\n".join(lines)


_TARGET_LINES = {
    "bridge msg/s": TARGETS["bridge_msgs_per_s_per_process"].threshold,
    "processor frames/s": TARGETS["processor_frames_per_s"].threshold,
    "sink rows/s": TARGETS["sink_rows_per_s"].threshold,
}


def throughput_chart(result: BenchResult, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in result.stages if s.timeseries]
    if not stages:
        return False
    fig, axes = plt.subplots(len(stages), 1, figsize=(10, 2.8 * len(stages)), squeeze=False)
    for ax, stage in zip(axes[:, 0], stages, strict=True):
        _plot_stage(ax, stage)
    fig.suptitle(f"f2 bench throughput ({result.machine.get('usable_cores')} cores, {result.started_at})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _plot_stage(ax: Axes, stage: StageResult) -> None:
    for name, points in stage.timeseries.items():
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], label=name, linewidth=1.2)
            if stage.name != "e2e" and name in _TARGET_LINES:
                ax.axhline(_TARGET_LINES[name], linestyle="--", linewidth=0.8, color="grey")
    if stage.window[1] > stage.window[0]:
        label = "measured window" if not stage.phases else "measured: maximum"
        ax.axvspan(stage.window[0], stage.window[1], alpha=0.08, color="green", label=label)
    colors = ("orange", "purple", "red", "blue", "brown")
    for (name, (start, end)), color in zip(stage.phases.items(), colors, strict=False):
        ax.axvspan(start, end, alpha=0.08, color=color, label=f"measured: {name}")
    ax.set_title(stage.name, fontsize=10, loc="left")
    ax.set_ylabel("per second")
    ax.set_xlabel("seconds since the stage started")
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)


def latency_chart(result: BenchResult, path: Path) -> bool:
    e2e = result.stage("e2e")
    if e2e is None or not any(lat.values_s for lat in e2e.latency):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for lat in e2e.latency:
        values = sorted(lat.values_s)
        if not values:
            continue
        ys = [(i + 1) / len(values) for i in range(len(values))]
        ax.plot(
            values,
            ys,
            label=f"{lat.level:.0%} of max ({lat.offered_frames_per_s:,.0f} frames/s), p99 {lat.p99_s or 0:.3f} s",
            linewidth=1.4,
        )
    ax.axvline(
        TARGETS["e2e_p99_at_50pct_s"].threshold,
        linestyle="--",
        color="grey",
        linewidth=0.8,
        label="p99 target at 50%: 1 s",
    )
    ax.axhline(0.99, linestyle=":", color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("device timestamp to database commit (s)")
    ax.set_ylabel("share of readings")
    ax.set_title("f2 bench end-to-end latency (cumulative distribution)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write_all(result: BenchResult, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    json_path = out_dir / JSON_NAME
    result.write_json(json_path)
    written.append(json_path)
    charts = []
    for name, fn in ((THROUGHPUT_PNG, throughput_chart), (LATENCY_PNG, latency_chart)):
        if fn(result, out_dir / name):
            written.append(out_dir / name)
            charts.append(name)
        else:
            (out_dir / name).unlink(missing_ok=True)  # an earlier run's chart would pass for this run's
    md_path = out_dir / MARKDOWN_NAME
    md_path.write_text(markdown(result, charts))
    written.append(md_path)
    return written
