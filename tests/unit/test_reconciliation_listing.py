"""The differences an hour's check shows: taken in turn from each controller, so one controller's flood hides
no other's."""

from __future__ import annotations

from f2_platform.defs.reconciliation.results import listed_differences
from f2_platform.reconciliation.model import NOT_PROCESSED, ControllerResult, Difference


def _result(controller: str, n: int) -> ControllerResult:
    result = ControllerResult(controller)
    result.differences.extend(
        Difference(controller, f"tele/f2-{controller}/x", 0, offset, NOT_PROCESSED, "never processed")
        for offset in range(n)
    )
    return result


def test_a_flooding_controller_leaves_room_for_every_other() -> None:
    results = {"flood": _result("flood", 10_000), "quiet": _result("quiet", 1), "clean": _result("clean", 0)}
    listed = listed_differences(results, 5)
    # In turn: flood 0, quiet 0, then flood 1, 2, 3 (quiet has no more; clean never had any).
    assert [(d.controller, d.offset) for d in listed] == [
        ("flood", 0),
        ("quiet", 0),
        ("flood", 1),
        ("flood", 2),
        ("flood", 3),
    ]


def test_fewer_differences_than_the_limit_are_all_listed() -> None:
    results = {"a": _result("a", 2), "b": _result("b", 3)}
    listed = listed_differences(results, 500)
    assert sorted((d.controller, d.offset) for d in listed) == [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("b", 2)]
