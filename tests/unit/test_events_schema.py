"""The events schema's credential and indicator checks (f2_platform/quality/schemas/events.py) on rows written
by hand: a fingerprint is 64 lowercase hex digits and only on access events, an indicator response is spaced
uppercase hex bytes and only on indicator events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pandera.errors
import pytest

from f2_platform.quality.events import typed_events
from f2_platform.quality.schemas.events import events_schema

START = datetime(2026, 3, 1, 8, tzinfo=UTC)
FP = "0123456789abcdef" * 4


def _row(kind: str, component: str, **values: Any) -> dict[str, Any]:
    return {
        "time": START + timedelta(minutes=len(values)),
        "controller_mac": "a1b2c3d4e5f6",
        "connector": 1,
        "component": component,
        "kind": kind,
        "state": None,
        "previous_state": None,
        "previous_duration_s": None,
        "credential_fingerprint": values.get("fingerprint"),
        "credential_length": values.get("length"),
        "indicator_hex": values.get("indicator"),
    }


def _failed_checks(*rows: dict[str, Any]) -> set[str]:
    frame = typed_events(pd.DataFrame(list(rows)))
    schema = events_schema(START, START + timedelta(hours=1), START + timedelta(hours=2), timedelta(minutes=5))
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as errors:
        return set(errors.failure_cases["check"].astype(str))
    return set()


def test_well_formed_access_and_indicator_rows_pass() -> None:
    assert (
        _failed_checks(
            _row("access", "reader-1", fingerprint=FP, length=11),
            _row("indicator", "reader-2", indicator="02 41 03"),
        )
        == set()
    )


@pytest.mark.parametrize(
    "fingerprint",
    [FP.upper(), FP[:-1], FP + "0", "g" + FP[1:], "", None],
    ids=["uppercase", "63-digits", "65-digits", "not-hex", "empty", "missing"],
)
def test_an_access_event_without_a_well_formed_fingerprint_fails(fingerprint: str | None) -> None:
    assert _failed_checks(_row("access", "reader-1", fingerprint=fingerprint, length=11)) == {
        "credential_only_on_access"
    }


def test_a_fingerprint_off_an_access_event_fails() -> None:
    assert _failed_checks(_row("indicator", "reader-1", indicator="02 41 03", fingerprint=FP)) == {
        "credential_only_on_access"
    }


@pytest.mark.parametrize("indicator", ["02 41 03 ", "02  41", "024103", "02 4g 03", "", None])
def test_an_indicator_event_without_well_formed_hex_fails(indicator: str | None) -> None:
    assert _failed_checks(_row("indicator", "reader-1", indicator=indicator)) == {"indicator_only_on_indicator"}


@pytest.mark.parametrize("length", [0, None])
def test_an_access_event_without_a_credential_length_fails(length: int | None) -> None:
    assert _failed_checks(_row("access", "reader-1", fingerprint=FP, length=length)) == {"credential_only_on_access"}
