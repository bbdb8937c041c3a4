"""`f2 bench`: throughput, latency and resource use of the real-time path, measured against real services.

Each stage runs the real daemons (`python -m streaming.<daemon>`, what `f2 <daemon>` supervises) against a
hermetic stack started for the run (or a running `f2 stack`), for a fixed duration after a warm-up, and
reports its numbers beside the targets of the performance issue and as ratios to reference figures measured
in the same run on the same services. See `f2_platform.bench.runner.run_bench`.
"""

from __future__ import annotations

from bench.config import ALL_STAGES, BenchConfig

__all__ = ["ALL_STAGES", "BenchConfig"]
