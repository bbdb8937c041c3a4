"""The hourly cross-hop reconciliation (issue 19): the asset, its check, job and schedule (assets.py), the
readers of each hop (sources.py) and the results table (results.py). Pure logic: f2_platform/reconciliation."""
