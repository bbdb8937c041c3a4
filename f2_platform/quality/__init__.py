"""Data quality: pandera schemas (schemas/), the frames they validate (frames.py, sql.py), the checks that run
them (checks.py, evaluation.py), the daily report (report/), dead-letter counts and alerts. Pure of Dagster:
the code location wires it in f2_platform/defs/quality."""
