"""The dbt models as daily-partitioned assets downstream of the aggregates; a run builds its window."""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
import json
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, dbt_assets

from f2_platform.defs.analytics.project import dbt_project, prepared_manifest
from f2_platform.defs.analytics.resource import AnalyticsDbtResource
from f2_platform.partitions import daily_partitions

GROUP = "analytics"
KEY_PREFIX = "analytics"


class F2DbtTranslator(DagsterDbtTranslator):
    """Models under `analytics/`; sources take the keys their `meta.dagster.asset_key` names (decoded_data,
    readings_hourly, readings_daily, registry/...), so the models hang below the aggregates' assets."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey([KEY_PREFIX, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP


def dbt_vars(start: Any, end: Any) -> str:
    """The `--vars` of a run: the partition window (a range for a backfill run), ISO 8601 in UTC."""
    return json.dumps({"start": start.isoformat(), "end": end.isoformat()})


@dbt_assets(
    manifest=prepared_manifest(),
    project=dbt_project,
    name="analytics_dbt_models",
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    dagster_dbt_translator=F2DbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
)
def analytics_dbt_models(context: dg.AssetExecutionContext, dbt: AnalyticsDbtResource) -> Iterator[Any]:
    window = context.partition_time_window
    yield from dbt.cli(["build", "--vars", dbt_vars(window.start, window.end)], context=context).stream()
