"""Dead letters (f2.deadletter): reading them by window (kafka_window.py), what they are (letters.py), their
summary by reason, controller and day (summary.py), and their replay through the processor's per-record step
and the sink's write path once the registry would decode them (replay.py). Used by `f2 deadletters` and the
Dagster concern f2_platform/defs/deadletters."""
