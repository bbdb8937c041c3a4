"""`f2 bench`: throughput, latency and resource use of the real-time path against the issue's targets."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import click

from bench.config import ALL_STAGES, DEFAULT_OUTPUT_DIR, BenchConfig


def _stages(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in names if s not in ALL_STAGES]
    if unknown or not names:
        raise click.BadParameter(f"choose from {', '.join(ALL_STAGES)} (comma-separated)")
    return names


def _levels(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        levels = tuple(float(x) / 100 for x in value.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter("percentages, e.g. 25,50,90") from None
    if not levels or not all(0 < x <= 1.5 for x in levels):
        raise click.BadParameter("percentages between 1 and 150, e.g. 25,50,90")
    return levels


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option(
    "--duration",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds measured per stage (and per end-to-end load level), after the warm-up.",
)
@click.option("--warmup", type=float, default=10.0, show_default=True, help="Seconds of warm-up before each.")
@click.option(
    "--stages",
    default=",".join(ALL_STAGES),
    show_default=True,
    callback=_stages,
    help="Comma-separated subset of the stages.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUTPUT_DIR,
    show_default=True,
    help="Where latest.json, latest.md and the charts go (raw/ holds logs, ledgers and profiles).",
)
@click.option(
    "--use-running-stack",
    is_flag=True,
    help="Measure the running `f2 stack` instead of starting a hermetic one (its daemons must be "
    "stopped; the bench's rows are removed afterwards).",
)
@click.option(
    "--controllers",
    type=int,
    default=1000,
    show_default=True,
    help="Generated controllers of the bench fleet (four frame sensors and six access and alarm components each).",
)
@click.option(
    "--event-share",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=BenchConfig.event_share,
    show_default=True,
    help="Share of the MQTT messages that are status and reader messages (events) rather than frames, in the "
    "stages that publish over MQTT (bridge, e2e, backpressure); 0: frames only.",
)
@click.option("--publishers", type=int, default=2, show_default=True, help="MQTT load generator processes.")
@click.option("--bridges", type=int, default=1, show_default=True, help="Bridge processes.")
@click.option("--processors", type=int, default=1, show_default=True, help="Processor processes.")
@click.option("--sinks", type=int, default=1, show_default=True, help="Sink processes.")
@click.option(
    "--levels",
    default="25,50,90",
    show_default=True,
    callback=_levels,
    help="End-to-end latency loads, in percent of the sustained maximum.",
)
@click.option(
    "--prefill-scale",
    type=float,
    default=1.6,
    show_default=True,
    help="Pre-filled topics hold this times the target rate times (warm-up + duration).",
)
@click.option(
    "--backpressure-stop",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds the backpressure stage keeps every sink stopped under full load.",
)
@click.option(
    "--broker-warmup",
    type=float,
    default=180.0,
    show_default=True,
    help="At most this many seconds of load warm the Kafka broker up (until its JIT compiler is quiet) "
    "before the first stage that uses it; 0 skips it.",
)
@click.option("--partitions", type=int, default=None, help="Kafka partitions of a hermetic stack's topics.")
@click.option(
    "--kafka-brokers",
    type=click.Choice(["1", "3"]),
    default="1",
    show_default=True,
    help="Kafka nodes of the hermetic stack: 3 runs a KRaft cluster (replication factor 3, min.insync.replicas 2).",
)
@click.option(
    "--profile",
    is_flag=True,
    help="Profile each measured window: the daemons with py-spy, PostgreSQL's processes with perf (as root).",
)
@click.option("--force", is_flag=True, help="With --use-running-stack: skip records the daemons have not read.")
def bench(
    duration: float,
    warmup: float,
    stages: tuple[str, ...],
    output_dir: Path,
    use_running_stack: bool,
    controllers: int,
    event_share: float,
    publishers: int,
    bridges: int,
    processors: int,
    sinks: int,
    levels: tuple[float, ...],
    prefill_scale: float,
    backpressure_stop: float,
    broker_warmup: float,
    partitions: int | None,
    kafka_brokers: str,
    profile: bool,
    force: bool,
) -> None:
    """Benchmark the bridge, processor, sink and the whole path, with reference figures and targets."""
    from bench.report import JSON_NAME, MARKDOWN_NAME
    from bench.runner import run_bench

    config = BenchConfig(
        duration_s=duration,
        warmup_s=warmup,
        stages=stages,
        output_dir=output_dir,
        use_running_stack=use_running_stack,
        controllers=controllers,
        event_share=event_share,
        publishers=publishers,
        bridges=bridges,
        processors=processors,
        sinks=sinks,
        levels=levels,
        prefill_scale=prefill_scale,
        backpressure_stop_s=backpressure_stop,
        broker_warmup_max_s=broker_warmup,
        kafka_partitions=partitions,
        kafka_brokers=int(kafka_brokers),
        profile=profile,
        force=force,
    )
    try:
        config.validate()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    # SIGTERM stops a run like Ctrl-C: the stages stop their daemons and a hermetic stack is taken down (the
    # default action would kill this process alone and leave the stack's services running).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run_bench(config, say=lambda text: click.echo(text, err=True))
    except KeyboardInterrupt:
        click.echo("f2 bench: interrupted; its daemons and stack are stopped, no results written", err=True)
        raise SystemExit(130) from None
    click.echo(f"results: {output_dir / MARKDOWN_NAME} and {output_dir / JSON_NAME}", err=True)
    failed = [s.name for s in result.stages if s.error]
    unreconciled = [
        s.name
        for s in result.stages
        if any(not r.ok for r in s.reconciliations.values())
        or any(lat.reconciliation is not None and not lat.reconciliation.ok for lat in s.latency)
    ]
    if failed or unreconciled:
        click.secho(
            f"stages failed: {', '.join(failed) or 'none'}; not reconciled: {', '.join(unreconciled) or 'none'}",
            fg="red",
            err=True,
        )
        raise SystemExit(1)
