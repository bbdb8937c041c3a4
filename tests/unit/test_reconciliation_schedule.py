"""The reconciliation's schedule asks for the hour that closed F2_RECONCILE_GRACE_MINUTES (15) before it runs,
and the partitions include the hour under way (a manual run reconciles what arrived so far)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from f2_platform.defs.reconciliation.assets import hourly_reconciliation_schedule, reconciliation_partitions


def test_the_schedule_reconciles_the_hour_closed_a_grace_period_earlier() -> None:
    assert hourly_reconciliation_schedule.cron_schedule == "15 * * * *"
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 1, 10, 15, tzinfo=UTC))
    request = hourly_reconciliation_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert (request.partition_key, request.run_key) == ("2026-03-01-09:00", "2026-03-01-09:00")
    # A minute before the grace period is over, the hour that just closed is not due yet.
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 1, 10, 14, tzinfo=UTC))
    request = hourly_reconciliation_schedule(context)
    assert isinstance(request, dg.RunRequest) and request.partition_key == "2026-03-01-08:00"


def test_the_current_hour_is_a_partition() -> None:
    now = datetime.now(UTC)
    assert reconciliation_partitions.get_last_partition_key() == now.strftime("%Y-%m-%d-%H:00")
