"""Shared facts and helpers of the deployment tests: paths, tools, the metric and setting names they check."""

from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
PROMETHEUS_DIR = DEPLOY / "prometheus"
GRAFANA_DIR = DEPLOY / "grafana"
K8S_DIR = DEPLOY / "k8s"
VENV_BIN = Path(sys.executable).parent
DOCKER_COMPOSE = REPO / ".cache" / "compose" / "venv" / "bin" / "docker-compose"
PROMTOOL = Path("/usr/bin/promtool")
PROMETHEUS = Path("/usr/bin/prometheus")
PROVISION_HINT = "run scripts/provision_tools.sh (make provision calls it)"

# Metrics the alert rules use that the daemons do not export yet (deploy/README.md, "Metrics the alerts
# need"). Rules on them stay silent until they exist; nothing else may reference an unknown metric.
REQUESTED_METRICS = {
    "f2_controller_last_seen_timestamp_seconds",
}
# Series Prometheus itself adds to every scrape.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


@cache
def exported_metric_names() -> frozenset[str]:
    """Every series name streaming/runtime/metrics.py can export (counters' _total, histograms' _bucket...), and the
    certificate-expiry gauge the enrollment service exports (certs/metrics.py)."""
    from certs.metrics import METRIC as CERTIFICATE_EXPIRY
    from streaming.runtime.metrics import REGISTRY

    return frozenset(REGISTRY._names_to_collectors) | {CERTIFICATE_EXPIRY}


@cache
def recording_rule_names() -> frozenset[str]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "recording_rules.yml").read_text())["groups"]
    return frozenset(rule["record"] for group in groups for rule in group["rules"])


_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a lexical scan: enough for the expressions we write)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![\w:])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", " ", text)  # numbers
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", text):
        word = match.group(0)
        if text[match.end() :].lstrip().startswith("(") or word.lower() in _KEYWORDS:
            continue  # a function, an aggregation, or an operator
        names.add(word)
    return names


def known_series() -> set[str]:
    return set(exported_metric_names()) | set(recording_rule_names()) | PROMETHEUS_SERIES


@cache
def setting_names() -> frozenset[str]:
    """Environment variables the platform reads through its settings classes (docs/contracts.md; F2_ENROLL_* from
    certs/settings.py), plus the few
    read directly: F2_LOG_LEVEL (run loop) and the init job's F2_INIT_*."""
    from pydantic_settings import BaseSettings

    from certs.settings import EnrollSettings
    from f2_platform.settings import DagsterSettings, ProjectSettings, StackSettings
    from streaming.settings import (
        BridgeSettings,
        ConnectionSettings,
        CredentialSettings,
        ProcessorSettings,
        SinkSettings,
    )

    names = {
        "F2_LOG_LEVEL",
        "F2_INIT_WAIT_S",
        "F2_INIT_KAFKA_PARTITIONS",
        "F2_INIT_KAFKA_REPLICATION_FACTOR",
        "F2_INIT_GRANTS_SQL",
        "F2_INIT_SEED_SAMPLE",
        "F2_HEALTH_PORT",
    }
    classes: list[type[BaseSettings]] = [
        ConnectionSettings,
        DagsterSettings,
        ProjectSettings,
        StackSettings,
        BridgeSettings,
        CredentialSettings,
        ProcessorSettings,
        SinkSettings,
        EnrollSettings,
    ]
    for cls in classes:
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            names.add(alias.upper() if isinstance(alias, str) else f"{prefix}{name}".upper())
    return frozenset(names)


def setting_of(env_name: str) -> str:
    """The setting an environment variable sets (NAME_FILE sets NAME through the image's entrypoint)."""
    return env_name.removesuffix("_FILE")


def load_yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
