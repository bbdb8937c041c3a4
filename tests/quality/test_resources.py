"""The code location's configuration of data quality and dbt, without services: the `data_quality` resource
takes its defaults from QualitySettings and hands the checks validated settings; the `dbt` resource gives dbt
the connection dbt/profiles.yml reads, and only for the dbt process; a missing manifest says what to run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from dagster_dbt import DbtProject
from pydantic import ValidationError

from f2_platform.defs.analytics import project
from f2_platform.defs.analytics.resource import AnalyticsDbtResource
from f2_platform.defs.resources import DataQualityResource, TimescaleResource
from f2_platform.quality.settings import QualitySettings


def test_data_quality_resource_defaults_from_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("F2_QUALITY_")]:
        monkeypatch.delenv(name)
    # The fields' declared defaults are QualitySettings' (what the UI shows before any environment).
    declared = DataQualityResource()
    assert declared.quality_settings() == QualitySettings()
    assert (declared.silent_after_intervals, declared.stuck_exempt_labels) == (10, ["Battery", "Energy"])

    monkeypatch.setenv("F2_QUALITY_SILENT_AFTER_INTERVALS", "4")
    monkeypatch.setenv("F2_QUALITY_STUCK_EXEMPT_LABELS", "Battery, Counter")
    built = DataQualityResource.from_settings()
    assert (built.silent_after_intervals, built.stuck_exempt_labels, built.report_dir) == (
        4,
        ["Battery", "Counter"],
        None,
    )
    assert built.gap_after_intervals == 10

    # A field left unset (the report folder) is read when the checks run; a set one stays what it was.
    monkeypatch.setenv("F2_QUALITY_REPORT_DIR", str(tmp_path))
    monkeypatch.setenv("F2_QUALITY_SILENT_AFTER_INTERVALS", "7")
    settings = built.quality_settings()
    assert (settings.report_dir, settings.silent_after_intervals) == (tmp_path, 4)

    # A run's configuration is validated like the environment is.
    with pytest.raises(ValidationError, match="min_completeness"):
        DataQualityResource(min_completeness=1.5).quality_settings()


def _dbt(**fields: str) -> AnalyticsDbtResource:
    return AnalyticsDbtResource(
        project_dir=str(project.DBT_PROJECT_DIR),
        profiles_dir=str(project.DBT_PROJECT_DIR),
        dbt_executable=project.dbt_executable(),
        timescale=TimescaleResource(dsn="postgresql://reader:s%40cret@db.example:6543/f2?sslmode=require"),
        **fields,
    )


def test_dbt_resource_connects_where_the_timescale_dsn_says(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("F2_DBT_")]:
        monkeypatch.delenv(name)
    env = _dbt().profile_environment()
    assert (env["F2_DBT_HOST"], env["F2_DBT_PORT"], env["F2_DBT_USER"], env["F2_DBT_PASSWORD"]) == (
        "db.example",
        "6543",
        "reader",
        "s@cret",
    )
    assert (env["F2_DBT_DBNAME"], env["F2_DBT_SSLMODE"], env["F2_DBT_SCHEMA"], env["F2_DBT_THREADS"]) == (
        "f2",
        "require",
        "f2_analytics",
        "4",
    )
    # Its own fields (the F2_DBT_* the environment sets) come first.
    configured = _dbt(user="analyst", port="7000", schema_name="marts").profile_environment()
    assert (configured["F2_DBT_USER"], configured["F2_DBT_PORT"], configured["F2_DBT_SCHEMA"]) == (
        "analyst",
        "7000",
        "marts",
    )
    assert configured["F2_DBT_HOST"] == "db.example"


def test_dbt_resource_hands_the_connection_to_dbt_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("F2_DBT_")]:
        monkeypatch.delenv(name)
    before = dict(os.environ)
    # A real dbt process (`dbt debug --config-dir` connects nowhere); the variables were its alone.
    invocation = _dbt().cli(["debug", "--config-dir"], raise_on_error=False).wait()
    assert invocation.process.returncode == 0
    assert dict(os.environ) == before


def test_a_missing_manifest_says_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copy = tmp_path / "dbt"
    shutil.copytree(project.DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs"))
    monkeypatch.setattr(project, "dbt_project", DbtProject(project_dir=copy, profiles_dir=copy))
    with pytest.raises(project.DbtProjectError) as caught:
        project.prepared_manifest()
    assert str(copy / "target" / "manifest.json") in str(caught.value) and project.PREPARE_COMMAND in str(caught.value)
