"""The trace header of f2.decoded records (docs/contracts.md): which raw record a reading came from, and the
registry and decoder versions that decoded it.

Cheap on the processor's hot path: only the first reading of each raw record carries it (one header per
frame, not per reading; a frame's readings share its device and timestamp, so `f2 trace` finds the header on
the first one for the others). Value: `<f2.raw partition>:<f2.raw offset>:<registry version>:<decoder version>`.
"""

from __future__ import annotations

from typing import NamedTuple

H_TRACE = "f2.trace"


class Trace(NamedTuple):
    raw_partition: int
    raw_offset: int
    registry_version: int
    decoder_version: str


TRACE_FORMAT = b"%d:%d:%d:%s"


def trace_value(raw_partition: int, raw_offset: int, registry_version: int, decoder_version: bytes) -> bytes:
    return TRACE_FORMAT % (raw_partition, raw_offset, registry_version, decoder_version)


def parse_trace(value: bytes | str) -> Trace:
    """The header's fields; ValueError saying what is wrong."""
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    parts = text.split(":", 3)
    if len(parts) != 4:
        raise ValueError(f"trace header {text[:80]!r}: expected partition:offset:registry version:decoder version")
    try:
        return Trace(int(parts[0]), int(parts[1]), int(parts[2]), parts[3])
    except ValueError:
        raise ValueError(f"trace header {text[:80]!r}: partition, offset and registry version are integers") from None
