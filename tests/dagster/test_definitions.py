"""The code location loads, its asset graph is what the other concerns build on, concerns are discovered,
and the instance configurations (local, production, Kubernetes) are valid Dagster configuration."""

from __future__ import annotations

import importlib
import shutil
import textwrap
from pathlib import Path

import dagster as dg
import pytest
import yaml

from f2_platform.dagster_home import WORKSPACE, connection_environment, instance_config, prepare_dagster_home
from f2_platform.settings import REPO_ROOT
from streaming.settings import ConnectionSettings

# The asset graph other concerns (data quality, analytics) rely on: key -> (group, upstream keys).
ASSET_GRAPH = {
    "kafka/f2_raw": ("streaming", set()),
    "kafka/f2_decoded": ("streaming", {"kafka/f2_raw"}),
    "kafka/f2_deadletter": ("streaming", {"kafka/f2_raw"}),
    "decoded_data": ("streaming", {"kafka/f2_decoded"}),
    "readings_hourly": ("aggregates", {"decoded_data"}),
    "readings_daily": ("aggregates", {"decoded_data", "readings_hourly"}),
    "decoded_data_compression": ("storage_policy", {"decoded_data"}),
    "timeseries_retention": ("storage_policy", {"decoded_data", "readings_hourly", "readings_daily"}),
}


@pytest.fixture(scope="module")
def repository() -> dg.RepositoryDefinition:
    from f2_platform.definitions import defs

    return defs.get_repository_def()


def test_asset_graph_snapshot(repository: dg.RepositoryDefinition) -> None:
    graph = repository.asset_graph
    snapshot = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        snapshot[key.to_user_string()] = (node.group_name, {k.to_user_string() for k in node.parent_keys})
    # Other concerns may add their own assets; ours stay exactly as declared.
    assert {k: v for k, v in snapshot.items() if k in ASSET_GRAPH} == ASSET_GRAPH
    hourly, daily = graph.get(dg.AssetKey("readings_hourly")), graph.get(dg.AssetKey("readings_daily"))
    assert isinstance(hourly.partitions_def, dg.HourlyPartitionsDefinition)
    assert isinstance(daily.partitions_def, dg.DailyPartitionsDefinition)
    columns = [c.name for c in hourly.metadata["dagster/column_schema"].columns]
    assert columns == [
        "bucket",
        "device_id",
        "datapoint_id",
        "avg_value",
        "min_value",
        "max_value",
        "sample_count",
        "first_value",
        "last_value",
        "stddev_value",
    ]


def test_jobs_schedules_sensors_and_resources(repository: dg.RepositoryDefinition) -> None:
    assert {"readings_hourly_job", "readings_daily_job", "storage_policy_job", "reprocess_job"} <= set(
        repository.job_names
    )
    schedules = {s.name: s for s in repository.schedule_defs}
    assert schedules["readings_hourly_schedule"].cron_schedule == "5 * * * *"
    assert schedules["readings_daily_schedule"].cron_schedule == "20 0 * * *"
    assert schedules["storage_policy_schedule"].cron_schedule == "30 2 * * *"
    assert {s.name for s in repository.sensor_defs} >= {
        "streaming_observation_sensor",
        "aggregate_late_data_sensor",
        "reprocess_followup_sensor",
    }
    assert set(repository.get_top_level_resources()) >= {"timescale", "registry", "kafka_admin", "redis"}


def test_concern_packages_are_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from f2_platform.definitions import build_definitions

    package = tmp_path / "fake_defs"
    (package / "quality").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "shared_names.py").write_text("X = 1\n")  # a module, not a concern: skipped
    (package / "quality" / "__init__.py").write_text(
        textwrap.dedent("""
        import dagster as dg

        @dg.asset
        def quality_report() -> None: ...

        def defs() -> dg.Definitions:
            return dg.Definitions(assets=[quality_report])
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    merged = build_definitions(importlib.import_module("fake_defs"))
    assert {k.to_user_string() for k in merged.get_repository_def().asset_graph.get_all_asset_keys()} == {
        "quality_report"
    }


def test_workspace_names_the_code_location() -> None:
    workspace = yaml.safe_load(WORKSPACE.read_text())
    (entry,) = workspace["load_from"]
    assert entry["python_module"] == {
        "module_name": "f2_platform.definitions",
        "attribute": "defs",
        "working_directory": ".",
        "location_name": "f2_platform",
    }
    # That `f2 dagster dev -w workspace.yaml` loads it is shown by tests/dagster/test_ui.py.


def test_local_instance_lives_under_the_state_folder(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    home = prepare_dagster_home(tmp_path)
    assert home == tmp_path / "dagster"
    assert prepare_dagster_home(tmp_path) == home  # idempotent
    config, _ = dagster_instance_config(str(home))
    assert config["storage"] == {"sqlite": {"base_dir": str(home / "storage")}}
    assert yaml.safe_load((home / "dagster.yaml").read_text()) == instance_config(home)
    instance = dg.DagsterInstance.from_config(str(home))
    assert instance.get_runs() == []
    env = connection_environment(ConnectionSettings(state_dir=tmp_path, timeseries_dsn="postgresql://x/y"))
    assert env["F2_STATE_DIR"] == str(tmp_path) and env["F2_TIMESERIES_DSN"] == "postgresql://x/y"


def test_production_instances_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_k8s import K8sRunLauncher

    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("DAGSTER_PG_PORT", "5432")
    for source in ("dagster.yaml", "dagster-k8s.yaml"):
        target = tmp_path / source.removesuffix(".yaml")
        target.mkdir()
        shutil.copy(REPO_ROOT / "deploy" / "dagster" / source, target / "dagster.yaml")
        config, _ = dagster_instance_config(str(target))
        assert set(config["storage"]) == {"postgres"}, source
    launcher = yaml.safe_load((REPO_ROOT / "deploy/dagster/dagster-k8s.yaml").read_text())["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    checked = process_config(K8sRunLauncher.config_type(), launcher["config"])
    assert checked.success, checked.errors
    values = yaml.safe_load((REPO_ROOT / "deploy/dagster/k8s-values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "f2_platform.definitions", "-a", "defs"]
