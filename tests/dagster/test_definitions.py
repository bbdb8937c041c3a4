"""The code location loads, its asset graph is what the other concerns build on, concerns are discovered,
and the instance configurations (local, production, Kubernetes) are valid Dagster configuration."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
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
    "kafka/f2_events": ("streaming", {"kafka/f2_raw"}),
    "device_events": ("streaming", {"kafka/f2_events"}),
    "component_states": ("streaming", {"kafka/f2_events"}),
    "controller_presence": ("streaming", {"kafka/f2_events"}),
    "events_hourly": ("events", {"device_events", "component_states", "controller_presence"}),
    "events_daily": ("events", {"device_events", "component_states", "controller_presence"}),
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
    # The code location is what Dagster's defs-folder loader finds in the package f2_platform/dg.toml names.
    ours = tomllib.loads((REPO_ROOT / "f2_platform" / "dg.toml").read_text())["project"]
    assert (ours["root_module"], ours["defs_module"]) == ("f2_platform", "f2_platform.defs")

    # The same loader on a package laid out like ours: a concern is a folder, found without being listed.
    package = tmp_path / "fake_platform"
    (package / "defs" / "quality").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "dg.toml").write_text('[project]\nroot_module = "fake_platform"\ndefs_module = "fake_platform.defs"\n')
    (package / "defs" / "__init__.py").write_text("")
    (package / "defs" / "shared_names.py").write_text("X = 1\n")  # no Dagster objects: adds nothing
    (package / "defs" / "quality" / "__init__.py").write_text("")
    (package / "defs" / "quality" / "report.py").write_text(
        textwrap.dedent("""
        import dagster as dg

        @dg.asset
        def quality_report() -> None: ...
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    merged = dg.load_from_defs_folder(path_within_project=package)
    assert {k.to_user_string() for k in merged.get_repository_def().asset_graph.get_all_asset_keys()} == {
        "quality_report"
    }


SECRETS = {
    "F2_TIMESERIES_DSN": "postgresql://owner:ts-s3cret@db.example:5432/f2",
    "F2_REGISTRY_DSN": "postgresql://owner:reg-s3cret@db.example:5432/f2",
    "F2_REDIS_URL": "redis://f2-admin:redis-s3cret@cache.example:6379/0",
    "F2_KAFKA_SASL_PASSWORD": "kafka-s3cret",
    "F2_DBT_PASSWORD": "dbt-s3cret",
}


def _only_f2(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name in [n for n in os.environ if n.startswith("F2_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_resources_show_variable_names_never_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    from f2_platform.defs.analytics.resource import dbt_resource
    from f2_platform.defs.resources import resources

    ca = "/etc/f2/kafka-ca.crt"
    _only_f2(
        monkeypatch,
        {
            **SECRETS,
            "F2_DAGSTER_ENVIRONMENT": "prod",
            "F2_KAFKA_BOOTSTRAP_SERVERS": "k:9092",
            "F2_KAFKA_SSL_CA_LOCATION": ca,
        },
    )
    code = dg.Definitions(resources={**resources(), "dbt": dbt_resource()})
    snap = RepositorySnap.from_def(code.get_repository_def())
    serialized = serialize_value(snap)
    for secret in SECRETS.values():
        assert secret not in serialized
    configured = {r.name: r.configured_values for r in snap.resources}
    named = {
        ("timescale", "dsn"): "F2_TIMESERIES_DSN",
        ("registry", "dsn"): "F2_REGISTRY_DSN",
        ("redis", "url"): "F2_REDIS_URL",
        ("kafka_admin", "bootstrap_servers"): "F2_KAFKA_BOOTSTRAP_SERVERS",
        ("kafka_admin", "sasl_password"): "F2_KAFKA_SASL_PASSWORD",
        ("kafka_admin", "ssl_ca_location"): "F2_KAFKA_SSL_CA_LOCATION",
        ("dbt", "password"): "F2_DBT_PASSWORD",
    }
    for (resource, field), variable in named.items():
        assert getattr(configured[resource][field], "name", None) == variable, (resource, field)
    # The thresholds are shown with their values.
    assert configured["data_quality"]["silent_after_intervals"] == "10"

    # When a run or tick uses them, the variables' values are what the resources hold.
    context = dg.build_sensor_context(resources=resources())
    assert context.resources.timescale.resolved_dsn() == SECRETS["F2_TIMESERIES_DSN"]
    assert context.resources.kafka_admin.client_config()["sasl.password"] == SECRETS["F2_KAFKA_SASL_PASSWORD"]
    assert context.resources.kafka_admin.client_config()["ssl.ca.location"] == ca


def test_required_variables_fail_outside_local_and_fall_back_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    from f2_platform.defs.resources import resources

    _only_f2(monkeypatch, {"F2_DAGSTER_ENVIRONMENT": "prod"})
    with pytest.raises(Exception, match="F2_TIMESERIES_DSN"):
        dg.build_sensor_context(resources={"timescale": resources()["timescale"]}).resources.timescale  # noqa: B018

    # Locally an unset variable is no EnvVar: the resource reads the settings (the local stack) when it runs.
    _only_f2(monkeypatch, {"F2_DAGSTER_ENVIRONMENT": "local", "F2_STATE_DIR": str(Path("/nonexistent/f2"))})
    local = resources()
    assert local["timescale"].dsn is None and local["kafka_admin"].sasl_password is None
    assert local["timescale"].resolved_dsn() == ConnectionSettings().timeseries_dsn


def test_schedules_and_sensors_take_one_default_status() -> None:
    from f2_platform.environment import default_status

    for environment, expected in (("ci", "STOPPED"), ("prod", "RUNNING"), ("local", "RUNNING")):
        assert default_status(dg.DefaultScheduleStatus, environment) == dg.DefaultScheduleStatus[expected]
        assert default_status(dg.DefaultSensorStatus, environment) == dg.DefaultSensorStatus[expected]
    # Every schedule and sensor follows it: in CI none starts by itself. (A process of its own: the statuses
    # are decided when the code location is imported, and this session imported it under other settings.)
    listing = (
        "from f2_platform.definitions import defs\n"
        "r = defs.get_repository_def()\n"
        "for d in [*r.schedule_defs, *r.sensor_defs]: print(d.name, d.default_status.name)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("F2_")} | {"F2_DAGSTER_ENVIRONMENT": "ci"}
    listed = subprocess.run(
        [sys.executable, "-c", listing], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    statuses = dict(line.split() for line in listed.stdout.splitlines())
    assert len(statuses) == 15 and set(statuses.values()) == {"STOPPED"}, statuses


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


def test_dagster_processes_find_this_interpreters_tools(tmp_path: Path) -> None:
    from f2_platform.dagster_home import dagster_environment

    # `dagster dev` loads the code location, whose dbt project is parsed by running `dbt` by name.
    conn = ConnectionSettings(state_dir=tmp_path)
    path = dagster_environment(conn, base={"PATH": "/usr/bin:/bin"})["PATH"].split(os.pathsep)
    assert path[0] == str(Path(sys.executable).parent) and path[1:] == ["/usr/bin", "/bin"]
    assert (Path(path[0]) / "dbt").exists()


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
