"""deploy/k8s: every manifest validates against the Kubernetes schemas (kubernetes-validate, strict), and the
daemons' workloads carry what production needs: probes on /healthz, resources, PodDisruptionBudgets,
NetworkPolicies, metrics Services, placeholder-only Secrets, replicas within the partition count. The Dagster
Helm values use the K8sRunLauncher and dagster-postgres."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.support import K8S_DIR, load_yaml_documents, setting_names, setting_of

NOT_MANIFESTS = {"kustomization.yaml"}
DAGSTER_VALUES = K8S_DIR.parent / "dagster" / "k8s-values.yaml"
MANIFEST_FILES = sorted(p for p in K8S_DIR.glob("*.yaml") if p.name not in NOT_MANIFESTS)
# The oldest Kubernetes minor we support, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
DAEMONS = {"bridge": 9101, "processor": 9102, "sink": 9103}
PLACEHOLDER = "REPLACE_ME"


def all_resources() -> list[dict[str, Any]]:
    return [doc for path in MANIFEST_FILES for doc in load_yaml_documents(path)]


def find(kind: str, name: str, namespace: str = "f2") -> dict[str, Any]:
    for doc in all_resources():
        if doc["kind"] == kind and doc["metadata"]["name"] == name and doc["metadata"].get("namespace") == namespace:
            return doc
    raise AssertionError(f"no {kind} {namespace}/{name}")


def workload(daemon: str) -> dict[str, Any]:
    matches = [
        doc
        for doc in all_resources()
        if doc["kind"] in ("Deployment", "StatefulSet") and doc["metadata"]["name"] == f"f2-{daemon}"
    ]
    assert len(matches) == 1, f"one workload for the {daemon}"
    return matches[0]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda p: p.name)
def test_manifest_validates_against_kubernetes_schema(path: Path, version: str) -> None:
    docs = load_yaml_documents(path)
    assert docs, f"{path.name} is empty"
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{path.name}: {doc['kind']}/{doc['metadata']['name']} invalid for {version}: "
                f"{exc.message} at {'.'.join(str(p) for p in exc.path)}"
            )


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFEST_FILES)
    assert kustomization["images"][0]["name"] == "f2-platform"


@pytest.mark.parametrize("daemon", sorted(DAEMONS))
def test_daemon_workload_is_production_ready(daemon: str) -> None:
    spec = workload(daemon)["spec"]
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["terminationGracePeriodSeconds"] >= 60, "time to finish and commit the current batch"
    (container,) = pod["containers"]
    assert container["args"] == ["f2", daemon]
    port = container["ports"][0]
    assert port == {"name": "metrics", "containerPort": DAEMONS[daemon], "protocol": "TCP"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe
    # Liveness gives up much later than readiness: a dependency outage should not cause a restart storm.
    live, ready = container["livenessProbe"], container["readinessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] > ready["periodSeconds"] * ready["failureThreshold"]
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    env = {e["name"]: e for e in container["env"]}
    assert env[f"F2_{daemon.upper()}_METRICS_PORT"]["value"] == str(DAEMONS[daemon])
    for name in env:
        if name.startswith("F2_"):
            assert setting_of(name) in setting_names(), f"{daemon}: {name} is no setting of the platform"
    for name, item in env.items():
        if name.endswith("_FILE"):
            mount = next(m for m in container["volumeMounts"] if item["value"].startswith(m["mountPath"] + "/"))
            volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
            secret = find("Secret", volume["secret"]["secretName"])
            assert item["value"].rsplit("/", 1)[1] in secret["stringData"], f"{daemon}: {name} points nowhere"
    for source in container["envFrom"]:
        find("ConfigMap", source["configMapRef"]["name"])


def test_identities_are_stable_where_the_daemon_needs_it() -> None:
    for daemon, setting in (("bridge", "F2_BRIDGE_CLIENT_ID"), ("processor", "F2_PROCESSOR_INSTANCE_ID")):
        resource = workload(daemon)
        assert resource["kind"] == "StatefulSet", f"the {daemon} needs a stable per-replica identity"
        env = {e["name"]: e for e in resource["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env[setting]["value"] == "$(POD_NAME)"
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert workload("sink")["kind"] == "Deployment"


def test_the_bridge_reads_the_broker_over_tls_with_its_client_certificate() -> None:
    # As the encrypted-hops test runs it: TLS to the broker's device listener, the broker verified with the
    # platform CA, the bridge known by its certificate; its egress is that port only, never the clear one.
    pod = workload("bridge")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["F2_MQTT_TLS"] == "true"
    assert "F2_MQTT_PASSWORD_FILE" not in env and "F2_MQTT_USERNAME" not in env
    for setting in ("F2_CA_CERT", "F2_MQTT_TLS_CERT", "F2_MQTT_TLS_KEY"):
        path = env[setting]
        assert path is not None, setting
        mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        secret = find("Secret", volume["secret"]["secretName"])
        assert path.rsplit("/", 1)[1] in secret["stringData"], f"{setting} points nowhere"
        assert volume["secret"]["defaultMode"] == 0o440
    tls_port = int(find("ConfigMap", "f2-connections")["data"]["F2_MQTT_TLS_PORT"])
    egress = {doc["metadata"]["name"]: doc for doc in all_resources() if doc["kind"] == "NetworkPolicy"}
    ports = {p["port"] for rule in egress["bridge-egress"]["spec"]["egress"] for p in rule["ports"]}
    assert tls_port in ports and 1883 not in ports


def test_replicas_follow_partition_counts() -> None:
    init = find("Job", "f2-init")
    env = {e["name"]: e.get("value") for e in init["spec"]["template"]["spec"]["containers"][0]["env"]}
    partitions = int(env["F2_INIT_KAFKA_PARTITIONS"])
    for daemon in ("processor", "sink"):
        resource = workload(daemon)
        assert 1 <= resource["spec"]["replicas"] <= partitions, f"{daemon}: more replicas than partitions idle"
        assert int(resource["metadata"]["annotations"]["f2.platform/max-useful-replicas"]) == partitions
    assert workload("bridge")["spec"]["replicas"] >= 2, "two bridges share the MQTT subscription for HA"


@pytest.mark.parametrize("daemon", sorted(DAEMONS))
def test_pdb_and_metrics_service(daemon: str) -> None:
    labels = workload(daemon)["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "f2", "the label the NetworkPolicies select"
    pdb = find("PodDisruptionBudget", f"f2-{daemon}")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = find("Service", f"f2-{daemon}")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": DAEMONS[daemon], "targetPort": "metrics", "protocol": "TCP"}
    ]
    # What prometheus-kubernetes.yml keeps and how it names the job.
    assert service["metadata"]["labels"]["app.kubernetes.io/part-of"] == "f2"
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] == daemon


def test_network_policies_deny_by_default_and_allow_only_what_is_needed() -> None:
    policies = {doc["metadata"]["name"]: doc for doc in all_resources() if doc["kind"] == "NetworkPolicy"}
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "f2"}}
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny and "egress" not in deny
    init_labels = find("Job", "f2-init")["spec"]["template"]["metadata"]["labels"]
    assert init_labels["app.kubernetes.io/part-of"] == "f2"
    scrape = policies["allow-prometheus-scrape"]["spec"]
    assert scrape["ingress"][0]["ports"] == [{"protocol": "TCP", "port": "metrics"}]
    for daemon in DAEMONS:
        assert f"{daemon}-egress" in policies


def test_enrollment_service_is_production_ready() -> None:
    resource = workload("enroll")
    assert resource["kind"] == "Deployment"
    spec = resource["spec"]
    # One writer of the PKI volume (index, issued certificates, the PKI's lock).
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "f2" and labels["app.kubernetes.io/component"] == "enroll"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    args = container["args"]
    assert args[:2] == ["f2", "certs"] and "serve" in args
    assert args[args.index("--host") + 1] == "0.0.0.0"
    pki = args[args.index("--pki-dir") + 1]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes[mounts[pki]["name"]]["persistentVolumeClaim"]["claimName"]
    find("PersistentVolumeClaim", claim)
    assert not mounts[pki].get("readOnly")
    env = {e["name"]: e["value"] for e in container["env"]}
    for name in env:
        assert setting_of(name) in setting_names(), f"enroll: {name} is no setting of the platform"
    (port,) = container["ports"]
    assert port == {"name": "https", "containerPort": int(env["F2_ENROLL_PORT"]), "protocol": "TCP"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}, probe
    for name in ("F2_ENROLL_TLS_CERT", "F2_ENROLL_TLS_KEY", "F2_ENROLL_REGISTRY_DSN_FILE"):
        directory, key = env[name].rsplit("/", 1)
        secret = find("Secret", volumes[mounts[directory]["name"]]["secret"]["secretName"])
        assert key in secret["stringData"], f"enroll: {name} points nowhere"
    # Its own least-privilege role, the one sql/grants_enrollment.sql gives its rights (applied by f2-init).
    directory, key = env["F2_ENROLL_REGISTRY_DSN_FILE"].rsplit("/", 1)
    dsn = find("Secret", volumes[mounts[directory]["name"]]["secret"]["secretName"])["stringData"][key]
    assert dsn.startswith("postgresql://f2_enroll:")
    assert "TO f2_enroll;" in (K8S_DIR.parents[1] / "sql" / "grants_enrollment.sql").read_text()
    init = find("Job", "f2-init")["spec"]["template"]["spec"]["containers"][0]
    grants = {e["name"]: e.get("value") for e in init["env"]}["F2_INIT_GRANTS_SQL"]
    assert grants == "/app/sql/grants.sql", "f2-init applies grants_enrollment.sql from beside grants.sql"
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    pdb = find("PodDisruptionBudget", "f2-enroll")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = find("Service", "f2-enroll")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [
        {"name": "https", "port": port["containerPort"], "targetPort": "https", "protocol": "TCP"}
    ]
    # prometheus-kubernetes.yml: job f2-enroll keeps this Service; f2-daemons (port `metrics`) skips it.
    assert service["metadata"]["labels"]["app.kubernetes.io/part-of"] == "f2"
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "enroll"
    policies = {doc["metadata"]["name"]: doc for doc in all_resources() if doc["kind"] == "NetworkPolicy"}
    assert policies["enroll-ingress"]["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": "https"}]}]
    assert policies["enroll-egress"]["spec"]["egress"] == [{"ports": [{"protocol": "TCP", "port": 5432}]}]


def test_secrets_hold_only_placeholders() -> None:
    secrets = [doc for doc in all_resources() if doc["kind"] == "Secret"]
    assert secrets
    for secret in secrets:
        assert "data" not in secret, "base64 data could hide a real value: use stringData placeholders"
        for key, value in secret["stringData"].items():
            if key.endswith("_USERNAME"):
                continue
            assert PLACEHOLDER in value, f"{secret['metadata']['name']}.{key} is not a placeholder"
            assert re.sub(r"REPLACE_ME", "", value).count("REPLACE") == 0


def test_dagster_helm_values_use_k8s_run_launcher_and_postgres_and_find_their_prerequisites() -> None:
    """deploy/dagster/k8s-values.yaml (the Dagster side's Helm values) against these manifests: every
    ConfigMap and Secret it names exists here, in the release namespace."""
    values = yaml.safe_load(DAGSTER_VALUES.read_text())
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    k8s = launcher["config"]["k8sRunLauncher"]
    namespace = k8s.get("jobNamespace") or "f2"
    postgres = values["postgresql"]
    assert postgres["enabled"] is False, "an external PostgreSQL holds the instance (dagster-postgres)"
    assert postgres["postgresqlHost"] and postgres["postgresqlDatabase"]
    assert values["generatePostgresqlPasswordSecret"] is False
    password = values.get("global", {}).get("postgresqlSecretName", "dagster-postgresql-secret")
    assert "postgresql-password" in find("Secret", password, namespace)["stringData"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["image"]["tag"] != "latest"
    sections = [values["dagsterWebserver"], deployment, k8s, values.get("dagsterDaemon", {})]
    for section in sections:
        for ref in section.get("envSecrets", []):
            find("Secret", ref["name"], namespace)
        for ref in section.get("envConfigMaps", []):
            config = find("ConfigMap", ref["name"], namespace)
            assert set(config["data"]) <= setting_names()
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
