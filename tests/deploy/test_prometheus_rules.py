"""deploy/prometheus: promtool checks the configurations and the rules and runs the rules' unit tests; every
metric a rule reads exists in streaming/runtime/metrics.py, is a recording rule, or is a documented request."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.support import (
    DEPLOY,
    PROMETHEUS_DIR,
    PROMTOOL,
    REQUESTED_METRICS,
    known_series,
    promql_metric_names,
)

RULE_FILES = ("recording_rules.yml", "alert_rules.yml")
F2_JOBS = {"f2-bridge", "f2-processor", "f2-sink"}
# The jobs of the certificate alerts (f2_certificate_expiry_timestamp_seconds, served by `f2 certs serve`).
CERTIFICATE_JOBS = {"f2-enroll"}
# The alerts issue 8 asks for, by what they watch.
REQUIRED_ALERTS = {
    "F2ConsumerLagGrowing",  # consumer lag growing
    "F2DeadLetterRateHigh",  # dead-letter rate above normal
    "F2BridgeMqttDisconnected",
    "F2BridgeKafkaUnavailable",  # bridge disconnected from MQTT or Kafka
    "F2SinkWriteFailures",
    "F2DaemonDown",  # sink write failures, a daemon down
    "F2ControllerSilent",  # a controller silent
    "F2CertificateExpiringSoon",  # certificate expiring soon
}


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    if not PROMTOOL.exists():
        pytest.fail(f"{PROMTOOL} is missing: install Debian's prometheus package (make provision)")
    return subprocess.run([str(PROMTOOL), *args], capture_output=True, text=True, cwd=cwd, check=False)


def rules() -> list[dict]:
    return [
        rule
        for name in RULE_FILES
        for group in yaml.safe_load((PROMETHEUS_DIR / name).read_text())["groups"]
        for rule in group["rules"]
    ]


def test_promtool_check_config() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_scrape_config(tmp_path) -> None:
    """Debian's promtool is built without Kubernetes service discovery, so the kubernetes_sd_configs block is
    swapped for a static target and the rest (relabelling, rule files) is checked by promtool."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus-kubernetes.yml").read_text())
    assert config["rule_files"] == list(RULE_FILES)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"f2-daemons", "f2-enroll"}
    for job in jobs.values():
        assert job["kubernetes_sd_configs"] == [{"role": "endpoints", "namespaces": {"names": ["f2"]}}]
        del job["kubernetes_sd_configs"]
        job["static_configs"] = [{"targets": ["127.0.0.1:9101"]}]
    relabel = {r.get("target_label"): r for r in jobs["f2-daemons"]["relabel_configs"]}
    assert relabel["job"]["replacement"] == "f2-$1", "jobs must be named like prometheus.yml's: f2-<component>"
    # The enrollment service: HTTPS with the platform CA, only its Service's `https` port.
    enroll = jobs["f2-enroll"]
    assert enroll["scheme"] == "https" and enroll["tls_config"]["ca_file"]
    keep = {r["source_labels"][0]: r["regex"] for r in enroll["relabel_configs"] if r.get("action") == "keep"}
    assert keep["__meta_kubernetes_service_label_app_kubernetes_io_component"] == "enroll"
    assert keep["__meta_kubernetes_endpoint_port_name"] == "https"
    daemons_keep = {
        r["source_labels"][0]: r["regex"] for r in jobs["f2-daemons"]["relabel_configs"] if r.get("action") == "keep"
    }
    assert daemons_keep["__meta_kubernetes_endpoint_port_name"] == "metrics", "f2-daemons must not scrape https"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    for name in RULE_FILES:
        shutil.copy(PROMETHEUS_DIR / name, tmp_path / name)
    result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests() -> None:
    tests = sorted(str(p.relative_to(PROMETHEUS_DIR)) for p in (PROMETHEUS_DIR / "tests").glob("*.yml"))
    assert tests
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_required_alerts_exist_and_are_tested() -> None:
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    assert set(alerts) >= REQUIRED_ALERTS
    tested = {
        case["alertname"]
        for path in (PROMETHEUS_DIR / "tests").glob("*.yml")
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert set(alerts) - tested == set(), "every alert has a unit test in which it fires"
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert {"summary", "description"} <= set(rule["annotations"]), name


def test_rules_read_only_metrics_that_exist_or_are_requested() -> None:
    known = known_series() | REQUESTED_METRICS
    for rule in rules():
        unknown = promql_metric_names(rule["expr"]) - known
        assert not unknown, f"{rule.get('alert') or rule.get('record')} reads unknown series {unknown}"
    used = {name for rule in rules() for name in promql_metric_names(rule["expr"])}
    assert used >= REQUESTED_METRICS, "a requested metric no rule uses should leave REQUESTED_METRICS"
    readme = (DEPLOY / "README.md").read_text()
    for metric in REQUESTED_METRICS:
        assert metric in readme, f"{metric} is requested but not documented in deploy/README.md"


def test_jobs_the_rules_select_are_scraped() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs >= F2_JOBS | CERTIFICATE_JOBS
    text = (PROMETHEUS_DIR / "alert_rules.yml").read_text()
    for job in F2_JOBS:
        assert job.removeprefix("f2-") in text
