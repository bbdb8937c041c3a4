"""`dbt`: the dbt CLI on the project (dagster-dbt's DbtCliResource), connected where dbt/profiles.yml says.

dbt/profiles.yml reads its connection with env_var('F2_DBT_*'). This resource knows it: the F2_DBT_* fields
the environment sets (as `dg.EnvVar`s, so the UI shows their names), and for the rest the pieces of the
`timescale` resource's DSN (F2_TIMESERIES_DSN), the database the models read and write.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, DbtCliResource
from dagster_dbt.dbt_manifest import DbtManifestParam
from pydantic import Field

from f2_platform.defs.analytics.project import dbt_executable, dbt_project, profile_environment
from f2_platform.defs.resources import TimescaleResource, timescale_resource
from f2_platform.defs.resources.env_vars import env_var
from f2_platform.quality.settings import DbtSettings

# The DbtSettings fields that are the resource's connection fields, one F2_DBT_* variable each.
CONNECTION_FIELDS = ("host", "port", "user", "password", "dbname", "sslmode", "schema_name", "threads")


class AnalyticsDbtResource(DbtCliResource):
    """`cli(args, context=...)` as DbtCliResource's, with the connection in the dbt process's environment.

    Python API besides DbtCliResource's: `profile_environment() -> dict[str, str]`, the F2_DBT_* variables
    dbt/profiles.yml reads.
    """

    timescale: TimescaleResource = Field(description="Whose DSN supplies the connection pieces left unset below.")
    host: str | None = Field(default=None, description="F2_DBT_HOST")
    port: str | None = Field(default=None, description="F2_DBT_PORT")
    user: str | None = Field(default=None, description="F2_DBT_USER")
    password: str | None = Field(default=None, description="F2_DBT_PASSWORD")
    dbname: str | None = Field(default=None, description="F2_DBT_DBNAME")
    sslmode: str | None = Field(default=None, description="F2_DBT_SSLMODE")
    schema_name: str | None = Field(default=None, description="F2_DBT_SCHEMA (default f2_analytics)")
    threads: str | None = Field(default=None, description="F2_DBT_THREADS (default 4)")

    def profile_environment(self) -> dict[str, str]:
        configured = {name: getattr(self, name) for name in CONNECTION_FIELDS if getattr(self, name) is not None}
        return profile_environment(self.timescale.resolved_dsn(), DbtSettings(**configured))

    def cli(
        self,
        args: Sequence[str],
        *,
        raise_on_error: bool = True,
        manifest: DbtManifestParam | None = None,
        dagster_dbt_translator: DagsterDbtTranslator | None = None,
        context: dg.OpExecutionContext | dg.AssetExecutionContext | None = None,
        target_path: Path | None = None,
    ) -> DbtCliInvocation:
        # DbtCliResource gives the dbt process (and the adapter it opens in this process) os.environ and takes
        # no other environment: the connection is there while the process starts, which keeps its own copy.
        with _environment(self.profile_environment()):
            return super().cli(
                args,
                raise_on_error=raise_on_error,
                manifest=manifest,
                dagster_dbt_translator=dagster_dbt_translator,
                context=context,
                target_path=target_path,
            )


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def dbt_resource() -> AnalyticsDbtResource:
    settings = DbtSettings()
    return AnalyticsDbtResource(
        project_dir=os.fspath(dbt_project.project_dir),
        profiles_dir=os.fspath(dbt_project.profiles_dir),
        dbt_executable=dbt_executable(),
        timescale=timescale_resource(),
        host=env_var(settings, "host"),
        port=env_var(settings, "port"),
        user=env_var(settings, "user"),
        password=env_var(settings, "password"),
        dbname=env_var(settings, "dbname"),
        sslmode=env_var(settings, "sslmode"),
        schema_name=env_var(settings, "schema_name"),
        threads=env_var(settings, "threads"),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The `dbt` resource, for the defs-folder loader (f2_platform/definitions.py)."""
    return dg.Definitions(resources={"dbt": dbt_resource()})
