"""Alerts: a failed blocking check, a device that falls silent, a door held open. Each is logged, then posted
as JSON to the webhook of F2_ALERT_WEBHOOK_URL when one is set.

The body carries a top-level `text` (what chat webhooks display) next to structured fields for machines.
A webhook that fails is logged and never fails the check or sensor that raised the alert.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from f2_platform.quality.settings import AlertSettings

log = logging.getLogger("f2_platform.quality.alerts")

KIND_BLOCKING_CHECK = "blocking_check_failed"
KIND_DEVICE_SILENT = "device_silent"
KIND_DOOR_HELD_OPEN = "door_held_open"


@dataclass(frozen=True)
class Alert:
    kind: str
    severity: str
    title: str
    text: str
    details: dict[str, Any] = field(default_factory=dict)
    raised_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def body(self) -> dict[str, Any]:
        return {
            "source": "f2-platform",
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "text": f"[{self.severity}] {self.title}\n{self.text}",
            "details": self.details,
            "raised_at": self.raised_at.isoformat(),
        }


@dataclass(frozen=True)
class Delivery:
    posted: bool
    status: int | None = None
    error: str | None = None


def send(alert: Alert, settings: AlertSettings | None = None) -> Delivery:
    """Logs the alert, then posts it to the webhook if one is configured."""
    settings = settings or AlertSettings()
    level = logging.ERROR if alert.severity == "ERROR" else logging.WARNING
    log.log(level, "alert %s: %s - %s", alert.kind, alert.title, alert.text)
    if not settings.webhook_url:
        log.info("no alert webhook configured (F2_ALERT_WEBHOOK_URL): alert %s only logged", alert.kind)
        return Delivery(posted=False)
    data = json.dumps(alert.body(), default=str).encode()
    last_error = ""
    for attempt in range(1, settings.attempts + 1):
        request = urllib.request.Request(
            settings.webhook_url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "f2-platform-alerts"},
        )
        try:
            with urllib.request.urlopen(request, timeout=settings.timeout_s) as response:
                status = int(response.status)
            log.info("alert %s posted to the webhook (HTTP %s)", alert.kind, status)
            return Delivery(posted=True, status=status)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            last_error = str(exc)
            log.warning("alert %s: webhook attempt %d/%d failed: %s", alert.kind, attempt, settings.attempts, exc)
            if attempt < settings.attempts:
                time.sleep(min(2.0, 0.5 * attempt))
    log.error("alert %s could not be delivered to the webhook: %s", alert.kind, last_error)
    return Delivery(posted=False, error=last_error)


def blocking_check_alert(asset: str, check: str, window: str, summary: str, sample: list[dict[str, Any]]) -> Alert:
    return Alert(
        kind=KIND_BLOCKING_CHECK,
        severity="ERROR",
        title=f"blocking check {check} failed on {asset}",
        text=f"window {window}: {summary}. Downstream assets of {asset} are not materialized.",
        details={"asset": asset, "check": check, "window": window, "summary": summary, "sample": sample},
    )


def silent_devices_alert(devices: list[dict[str, Any]], threshold_intervals: int) -> Alert:
    names = ", ".join(f"{d.get('device_name')} (#{d.get('device_id')})" for d in devices)
    return Alert(
        kind=KIND_DEVICE_SILENT,
        severity="WARN",
        title=f"{len(devices)} device(s) fell silent",
        text=f"no reading for more than {threshold_intervals} expected intervals: {names}",
        details={"devices": devices, "threshold_intervals": threshold_intervals},
    )


def door_held_open_alert(doors: list[dict[str, Any]], threshold_s: int, window: str) -> Alert:
    """Doors whose open run lasted (or, still open, lasts) longer than `threshold_s`; one alert per check run,
    listing the runs not alerted before."""
    names = ", ".join(
        f"{d.get('component')} of {d.get('controller_mac')} (J{d.get('connector')}) open {d.get('held_s')} s"
        + (" and still open" if d.get("still_open") else "")
        for d in doors
    )
    return Alert(
        kind=KIND_DOOR_HELD_OPEN,
        severity="WARN",
        title=f"{len(doors)} door(s) held open longer than {threshold_s} s",
        text=f"window {window}: {names}",
        details={"doors": doors, "threshold_s": threshold_s, "window": window},
    )
