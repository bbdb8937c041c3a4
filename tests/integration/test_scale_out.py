"""Two processors and two sinks split the partitions between them, and the reconciliation holds."""

from __future__ import annotations

import pytest

from streaming.kafka import topics
from tests.integration.test_reconciliation import assert_reconciled, run_fleet
from tests.pipeline import Pipeline, env_without_proxy
from tests.realtime import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def pipeline2(migrated, stack_env, tmp_path_factory):
    p = Pipeline(env_without_proxy(stack_env), tmp_path_factory.mktemp("daemons2"), processors=2, sinks=2)
    p.start()
    try:
        yield p
    finally:
        p.stop()


def _assignments(p: Pipeline, kind: str) -> list[set[int | str]]:
    """What each daemon of `kind` holds: partitions of f2.raw (processors), `topic:partition` (sinks)."""
    return [set(d.healthz()[1].get("assigned_partitions", [])) for d in p.daemons if d.kind == kind]


def test_two_processors_and_two_sinks_share_the_work(migrated, stack, stack_env, pipeline2, tmp_path) -> None:
    numbers = range(stack.settings.kafka_partitions)
    # The processors share f2.raw; the sinks f2.decoded and f2.events, whose partitions share their numbers.
    wanted: dict[str, set[int | str]] = {
        "processor": set(numbers),
        "sink": {f"{topic}:{n}" for topic in (topics.DECODED, topics.EVENTS) for n in numbers},
    }
    for kind, partitions in wanted.items():

        def split(kind: str = kind, partitions: set[int | str] = partitions) -> bool:
            a, b = _assignments(pipeline2, kind)
            return bool(a) and bool(b) and not (a & b) and (a | b) == partitions

        wait_for(split, 60, what=f"the {kind}s to split the {len(partitions)} partitions")
    ledger = tmp_path / "ledger.jsonl"
    run_fleet(stack_env, ledger, controllers=10, interval=0.05, count=5000)
    assert_reconciled(ledger, migrated)
    assert all(pipeline2.alive().values()), pipeline2.alive()
