"""The trace of a stored reading back through the pipeline (trace.py): `f2 trace` and Dagster asset metadata."""
