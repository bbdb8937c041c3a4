"""The batch header of f2.decoded (docs/contracts.md): on the first record each processor transaction writes to
f2.decoded, the f2.raw offset ranges that transaction decoded and the registry and decoder versions it decoded
them with. One header per transaction, never per record: the hot path pays nothing per reading. `f2 trace`
finds a reading's raw record in f2.raw and the transaction that decoded it by these ranges.

Value (ASCII): `r<registry version>;d<decoder version>;<partition>:<first>-<last>[,<partition>:<first>-<last>...]`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

H_BATCH = "f2.batch"


class BatchTrace(NamedTuple):
    registry_version: int
    decoder_version: str
    ranges: tuple[tuple[int, int, int], ...]  # (raw partition, first offset, last offset)

    def holds(self, partition: int, offset: int) -> bool:
        return any(p == partition and first <= offset <= last for p, first, last in self.ranges)


def batch_value(ranges: Iterable[tuple[int, int, int]], registry_version: int, decoder_version: str) -> bytes:
    spans = ",".join(f"{p}:{first}-{last}" for p, first, last in ranges)
    return f"r{registry_version};d{decoder_version};{spans}".encode()


def parse_batch(value: bytes | str) -> BatchTrace:
    """The header's fields; ValueError saying what is wrong."""
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    parts = text.split(";", 2)
    if len(parts) != 3 or not parts[0].startswith("r") or not parts[1].startswith("d"):
        raise ValueError(f"batch header {text[:80]!r}: expected r<registry>;d<decoder>;<partition>:<first>-<last>,...")
    try:
        ranges = []
        for span in filter(None, parts[2].split(",")):
            partition, offsets = span.split(":")
            first, last = offsets.split("-")
            ranges.append((int(partition), int(first), int(last)))
        return BatchTrace(int(parts[0][1:]), parts[1][1:], tuple(ranges))
    except ValueError:
        raise ValueError(
            f"batch header {text[:80]!r}: partitions, offsets and the registry version are integers"
        ) from None
