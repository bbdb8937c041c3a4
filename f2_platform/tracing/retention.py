"""sink_batches is kept as long as f2.decoded keeps the records it points at (7 days): older chunks say nothing
a trace can follow, and are dropped whole (drop_chunks, both editions)."""

from __future__ import annotations

from datetime import timedelta

# f2.decoded's retention (streaming/kafka/topics.py).
KEEP = timedelta(days=7)
DROP_SQL = "SELECT count(*) FROM drop_chunks('sink_batches', older_than => now() - %s::interval)"
