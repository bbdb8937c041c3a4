"""The Dagster parts of the deployments agree with the code location (workspace.yaml) and with Dagster."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from tests.deploy.support import COMPOSE_FILE, DEPLOY, REPO

COMPOSE_DAGSTER = COMPOSE_FILE.parent / "dagster"
INSTANCE = DEPLOY / "dagster" / "dagster.yaml"  # the Dagster side's production instance, mounted by Compose
HELM_VALUES = DEPLOY / "dagster" / "k8s-values.yaml"


def code_location() -> dict[str, str]:
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    return entry["python_module"]


def test_compose_mounts_a_valid_postgres_instance(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._core.instance.config import dagster_instance_config

    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    mounts = compose["services"]["dagster-webserver"]["volumes"]
    assert "../dagster/dagster.yaml:/opt/dagster/dagster_home/dagster.yaml:ro" in mounts
    shutil.copy(INSTANCE, tmp_path / "dagster.yaml")
    env = compose["services"]["dagster-webserver"]["environment"]
    referenced = set(re.findall(r"env: (DAGSTER_PG_\w+)", INSTANCE.read_text()))
    assert referenced, "the instance reads its database from DAGSTER_PG_* variables"
    for name in referenced:
        assert name in env or f"{name}_FILE" in env, f"Compose does not set {name}"
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")
    config, _ = dagster_instance_config(str(tmp_path))
    assert set(config["storage"]) == {"postgres"}
    # Without a run launcher, runs start in the code server's container: no Docker socket needed.
    assert "run_launcher" not in config or config["run_launcher"]["class"] == "DefaultRunLauncher"


def test_deployments_serve_the_code_location_of_workspace_yaml() -> None:
    location = code_location()
    compose_workspace = yaml.safe_load((COMPOSE_DAGSTER / "workspace.yaml").read_text())
    (server,) = compose_workspace["load_from"]
    assert server["grpc_server"]["location_name"] == location["location_name"]
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    code_server = compose["services"]["dagster-code"]["command"]
    assert code_server[code_server.index("-m") + 1] == location["module_name"]
    assert code_server[code_server.index("-a") + 1] == location["attribute"]
    assert f"-p {server['grpc_server']['port']}" in " ".join(code_server)
    values = yaml.safe_load(HELM_VALUES.read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", location["module_name"], "-a", location["attribute"]]


def test_code_location_runs_in_production_mode() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    for name in ("dagster-code", "dagster-webserver", "dagster-daemon"):
        assert compose["services"][name]["environment"]["F2_DAGSTER_ENVIRONMENT"] == "prod", name
    values = yaml.safe_load(HELM_VALUES.read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert {"name": "F2_DAGSTER_ENVIRONMENT", "value": "prod"} in deployment["env"]
    assert "F2_DAGSTER_ENVIRONMENT=prod" in values["runLauncher"]["config"]["k8sRunLauncher"]["envVars"]
