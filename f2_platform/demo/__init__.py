"""`f2 demo up`'s parts beyond starting processes: the history it loads through the real pipeline and
materializes in Dagster (`plan`, pure; `history`, the step; `materialize`, the Dagster runs) and the guide it
prints (`guide`, pure)."""
