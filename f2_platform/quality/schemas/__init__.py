"""pandera schemas, one per concern. They state what correct data looks like and nothing else: the frames
come from f2_platform.quality.frames and the checks that run them from f2_platform.quality.checks.

Schemas that depend on a moment or a threshold are built by a function taking it.
"""

from __future__ import annotations

from pandera.engines import pandas_engine

# Every time in the frames is UTC with microsecond resolution (PostgreSQL's).
UTC_TIME = pandas_engine.DateTime(tz="UTC", unit="us")  # type: ignore[call-arg]
