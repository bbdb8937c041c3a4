"""The dbt project (dbt/) as the code location uses it: its manifest, produced by `dbt parse` when the
project changed, and the connection environment dbt/profiles.yml reads."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from f2_platform.errors import F2Error
from f2_platform.quality.settings import DbtSettings
from f2_platform.settings import PROJECT_DIR

DBT_PROJECT_DIR = PROJECT_DIR / "dbt"
_SOURCES = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests")
_STAMP = "f2-manifest.sha256"


class DbtProjectError(F2Error):
    """The dbt project could not be parsed."""


def dbt_executable() -> str:
    """The dbt next to this interpreter (a run worker's PATH may not include the virtualenv)."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def profile_environment(dsn: str, settings: DbtSettings | None = None) -> dict[str, str]:
    """F2_DBT_* for dbt/profiles.yml: explicit settings first, then the pieces of `dsn`."""
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
    }
    # A host list or a socket directory is libpq's business; dbt-postgres takes one host.
    env["F2_DBT_HOST"] = env["F2_DBT_HOST"].split(",")[0]
    return env


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """os.environ with `values` for the duration (dagster-dbt hands os.environ to the dbt process)."""
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


def target_dir(settings: DbtSettings | None = None) -> Path:
    settings = settings or DbtSettings()
    return settings.target_dir or DBT_PROJECT_DIR / "target"


def fingerprint(project_dir: Path = DBT_PROJECT_DIR) -> str:
    """A digest of every file dbt reads to build the manifest."""
    digest = hashlib.sha256()
    for name in _SOURCES:
        root = project_dir / name
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            digest.update(str(path.relative_to(project_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def prepared_manifest(project_dir: Path = DBT_PROJECT_DIR, settings: DbtSettings | None = None) -> Path:
    """The manifest of the project as it is now: parsed again only when a project file changed.

    Processes loading the code location at the same time (webserver, daemon) take turns on a lock; the
    manifest is written elsewhere and moved into place, so a reader never sees half of one.
    """
    target = target_dir(settings)
    target.mkdir(parents=True, exist_ok=True)
    manifest, stamp = target / "manifest.json", target / _STAMP
    wanted = fingerprint(project_dir)
    with open(target / ".f2-parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if manifest.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
            return manifest
        scratch = Path(tempfile.mkdtemp(prefix="parse-", dir=target))
        try:
            env = {
                **os.environ,
                **profile_environment("postgresql://localhost/postgres", settings),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "DBT_LOG_PATH": str(scratch),
            }
            result = subprocess.run(
                [
                    dbt_executable(),
                    "parse",
                    "--project-dir",
                    str(project_dir),
                    "--profiles-dir",
                    str(project_dir),
                    "--target-path",
                    str(scratch),
                ],
                cwd=project_dir,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if result.returncode != 0 or not (scratch / "manifest.json").exists():
                raise DbtProjectError(
                    f"dbt parse failed ({result.returncode}): {(result.stdout + result.stderr)[-3000:]}"
                )
            os.replace(scratch / "manifest.json", manifest)
            stamp.write_text(wanted + "\n")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return manifest
