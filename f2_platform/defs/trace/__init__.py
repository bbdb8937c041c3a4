"""The trace of a reading in Dagster (f2_platform/tracing): a job whose output metadata is a reading's trace,
and the daily drop of sink_batches chunks older than f2.decoded's retention."""
