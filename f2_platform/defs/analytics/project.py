"""The dbt project (dbt/) as dagster-dbt's DbtProject, and the connection environment dbt/profiles.yml reads.

The manifest the assets are built from is prepared by dagster-dbt: under `dagster dev` (`f2 dagster dev`)
again on every load of the code location, so model edits show at once (`prepare_if_dev`); for a deployment
once, when the image is built (`dagster-dbt project prepare-and-package --file <this file>`), so a container
loads it read-only and parses nothing at start.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtProject
from psycopg.conninfo import conninfo_to_dict

from f2_platform.errors import F2Error
from f2_platform.quality.settings import DbtSettings
from f2_platform.settings import PROJECT_DIR
from streaming.settings import ConnectionSettings

DBT_PROJECT_DIR = PROJECT_DIR / "dbt"
PREPARE_COMMAND = "dagster-dbt project prepare-and-package --file f2_platform/defs/analytics/project.py"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()


class DbtProjectError(F2Error):
    """The dbt project's manifest is missing."""


def prepared_manifest() -> Path:
    """The manifest `dagster dev` or the image build prepared; what to run when neither did."""
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        raise DbtProjectError(
            f"the dbt manifest {manifest} is missing: `f2 dagster dev` prepares it when the code location "
            f"loads; anywhere else run `{PREPARE_COMMAND}` in {PROJECT_DIR} first (the image build does)"
        )
    return manifest


def dbt_executable() -> str:
    """The dbt next to this interpreter (a run worker's PATH may not include the virtualenv)."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def profile_environment(
    dsn: str, settings: DbtSettings | None = None, registry_schema: str | None = None
) -> dict[str, str]:
    """F2_DBT_* for dbt/profiles.yml: explicit settings first, then the pieces of `dsn`; and F2_REGISTRY_SCHEMA,
    the registry's schema the sources read (dbt_project.yml), from ConnectionSettings unless given."""
    settings = settings or DbtSettings()
    pieces = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    env = {
        "F2_DBT_HOST": settings.host or pieces.get("host", "127.0.0.1"),
        "F2_DBT_PORT": str(settings.port or pieces.get("port", "5432")),
        "F2_DBT_USER": settings.user or pieces.get("user", "postgres"),
        "F2_DBT_PASSWORD": settings.password if settings.password is not None else pieces.get("password", ""),
        "F2_DBT_DBNAME": settings.dbname or pieces.get("dbname", "postgres"),
        "F2_DBT_SSLMODE": settings.sslmode or pieces.get("sslmode", "prefer"),
        "F2_DBT_SCHEMA": settings.schema_name,
        "F2_DBT_THREADS": str(settings.threads),
        "F2_REGISTRY_SCHEMA": registry_schema or ConnectionSettings().registry_schema,
    }
    # A host list or a socket directory is libpq's business; dbt-postgres takes one host.
    env["F2_DBT_HOST"] = env["F2_DBT_HOST"].split(",")[0]
    return env
