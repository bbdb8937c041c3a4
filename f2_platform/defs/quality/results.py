"""From a check outcome to Dagster: the AssetCheckResult (failure counts, a sample of failing rows) and, for
a failed blocking check, the alert."""

from __future__ import annotations

from typing import Any

import dagster as dg

from f2_platform.quality import alerts
from f2_platform.quality.checks import CheckOutcome, Severity
from f2_platform.quality.settings import QualitySettings
from f2_platform.quality.window import CheckWindow

MAX_DEVICES_LISTED = 1000
SEVERITIES = {Severity.ERROR: dg.AssetCheckSeverity.ERROR, Severity.WARN: dg.AssetCheckSeverity.WARN}


def check_result(outcome: CheckOutcome, window: CheckWindow, settings: QualitySettings) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = {
        "failure_count": outcome.failure_count,
        "rows_checked": outcome.rows_checked,
        "window": window.label(),
        "as_of": dg.MetadataValue.timestamp(window.as_of),
        "meaning": "the data is wrong" if outcome.severity is Severity.ERROR else "a device misbehaves",
    }
    if not outcome.passed:
        metadata["failing_rows_sample"] = dg.MetadataValue.json(outcome.sample(settings.sample_rows))
        if "device_id" in outcome.failures.columns:
            devices = sorted({int(d) for d in outcome.failures["device_id"]})
            metadata["failing_devices"] = dg.MetadataValue.json(devices[:MAX_DEVICES_LISTED])
            metadata["failing_device_count"] = len(devices)
    if outcome.errors:
        metadata["schema_errors"] = dg.MetadataValue.text("\n".join(outcome.errors))
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=SEVERITIES[outcome.severity],
        metadata=metadata,
        description=outcome.summary(),
    )


def alert_if_blocking_failed(
    context: dg.AssetCheckExecutionContext,
    outcome: CheckOutcome,
    window: CheckWindow,
    settings: QualitySettings,
) -> None:
    """A failed blocking (ERROR) check is logged in the run and posted to the webhook."""
    if outcome.passed or outcome.severity is not Severity.ERROR:
        return
    spec = context.check_specs[0]
    context.log.error(f"blocking check {spec.name} on {spec.asset_key.to_user_string()} failed: {outcome.summary()}")
    alerts.send(
        alerts.blocking_check_alert(
            asset=spec.asset_key.to_user_string(),
            check=spec.name,
            window=window.label(),
            summary=outcome.summary(),
            sample=outcome.sample(min(5, settings.sample_rows)),
        )
    )
