"""deploy/grafana: dashboards are well-formed Grafana JSON, each panel queries a provisioned datasource, every
PromQL expression parses (promtool) and reads only metrics that exist (streaming/runtime/metrics.py, the recording
rules, or the documented requests), and the SQL panels read the platform's tables."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    GRAFANA_DIR,
    PROMTOOL,
    REPO,
    REQUESTED_METRICS,
    known_series,
    promql_metric_names,
)

DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
SQL_TABLES = {
    "decoded_data",
    "latest_values",
    "readings_hourly",
    "reconciliation_results",
    "component_states",
    "controller_presence",
    "event_activity_hourly",
}
GRAFANA_VARIABLES = {"$__range": "1h", "$__rate_interval": "1m", "$__interval": "1m"}
# What issue 8 asks the dashboards to show, found by panel title.
REQUIRED_PANELS = {
    "f2-pipeline": [
        "Records in",
        "Records out",
        "Batch duration",
        "End-to-end latency",
        "Consumer lag",
        "Dead letters by reason",
        "cache hit rate",
        "Silent controllers",
        "newest readings",
        "Hours failing reconciliation",
        "Failed reconciliations",
        "Events per second by kind",
        "Door states",
        "Controller presence",
    ],
    "f2-readings": ["Hourly average", "Readings per hour"],
}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    result = []
    for panel in dashboard["panels"]:
        result.append(panel)
        result.extend(panel.get("panels", []))
    return result


def datasources() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "f2.yaml").read_text())
    return {ds["uid"]: ds for ds in config["datasources"]}


def prom_exprs() -> list[tuple[str, str, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in panels(json.loads(path.read_text())):
            for target in panel.get("targets", []):
                if "expr" in target:
                    found.append((path.name, panel["title"], target["expr"]))
    return found


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert {"uid", "title", "panels", "schemaVersion", "time", "templating"} <= set(dashboard)
    assert dashboard["uid"] == path.stem and "f2" in dashboard["tags"]
    assert "id" not in dashboard or dashboard["id"] is None, "provisioned dashboards carry no database id"
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    known = datasources()
    cells: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        for dx in range(grid["w"]):
            for dy in range(grid["h"]):
                cell = (grid["x"] + dx, grid["y"] + dy)
                assert cell not in cells, f"{panel['title']} overlaps another panel"
                cells.add(cell)
        if panel["type"] == "row":
            continue
        assert panel.get("title") and panel.get("description"), f"panel {panel['id']} needs a title and a description"
        assert panel["targets"], panel["title"]
        for target in [panel, *panel["targets"]]:
            ds = target["datasource"]
            assert ds["uid"] in known and ds["type"] == known[ds["uid"]]["type"], f"{panel['title']}: {ds}"
        for target in panel["targets"]:
            assert ("expr" in target) != ("rawSql" in target), panel["title"]
    titles = " | ".join(panel["title"] for panel in panels(dashboard)).lower()
    for wanted in REQUIRED_PANELS[dashboard["uid"]]:
        assert wanted.lower() in titles, f"{dashboard['uid']} lacks a panel on {wanted!r}"
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] in known


def test_promql_reads_only_known_metrics() -> None:
    exprs = prom_exprs()
    assert exprs
    known = known_series() | REQUESTED_METRICS
    for dashboard, title, expr in exprs:
        names = promql_metric_names(expr)
        assert names, f"{dashboard} / {title}: no metric in {expr!r}"
        assert names <= known, f"{dashboard} / {title}: unknown series {names - known}"


def test_dashboard_metrics_are_written_by_a_daemon() -> None:
    """A metric that exists but that no daemon increments or sets exports no series: its panel stays empty (as
    the panel on f2_ignored_total did once reader messages became events). Every metric of streaming/runtime/
    metrics.py a dashboard reads is used by name in the daemons' code outside that module."""
    from streaming.runtime import metrics

    collectors = metrics.REGISTRY._names_to_collectors
    variable_of = {id(value): name for name, value in vars(metrics).items() if not name.startswith("_")}
    sources = "\n".join(
        path.read_text()
        for path in sorted((REPO / "streaming").rglob("*.py"))
        if path != REPO / "streaming" / "runtime" / "metrics.py"
    )
    for dashboard, title, expr in prom_exprs():
        for name in promql_metric_names(expr):
            collector = collectors.get(name)
            if collector is None:
                continue  # a recording rule, Prometheus' own series or another exporter's
            variable = variable_of.get(id(collector))
            assert variable, f"{dashboard} / {title}: {name} has no module-level name in streaming/runtime/metrics.py"
            assert re.search(rf"\b{variable}\b", sources), (
                f"{dashboard} / {title}: {name} ({variable}) is never incremented or set by a daemon, so it exports no "
                "series and the panel stays empty"
            )


def test_promql_parses(tmp_path) -> None:
    """promtool parses each expression as the body of a recording rule."""
    rules = []
    for i, (_, _, expr) in enumerate(prom_exprs()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unexpected Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:expr_{i}", "expr": expr})
    path = tmp_path / "dashboard_exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sql_panels_read_platform_tables() -> None:
    count = 0
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        queries = [t["rawSql"] for p in panels(dashboard) for t in p.get("targets", []) if "rawSql" in t]
        queries += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
        for sql in queries:
            count += 1
            tables = set(re.findall(r"(?<!EPOCH )\bFROM\s+([\w.\"]+)", sql, flags=re.IGNORECASE))
            assert tables and tables <= SQL_TABLES, f"{path.name}: {sql!r} reads {tables}"
            assert not re.search(r"\b(INSERT|UPDATE|DELETE|DROP|ALTER|TRUNCATE)\b", sql, re.IGNORECASE)
    assert count


def test_provisioning() -> None:
    sources = datasources()
    assert sources["f2-prometheus"]["type"] == "prometheus"
    pg = sources["f2-timescaledb"]
    assert pg["type"] == "grafana-postgresql-datasource" and pg["jsonData"]["timescaledb"] is True
    assert pg["secureJsonData"]["password"].startswith("$__file{/run/secrets/"), "the password comes from a file"
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "f2.yaml").read_text())["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards/f2"
    compose = (GRAFANA_DIR.parent / "compose" / "compose.yaml").read_text()
    assert "../grafana/dashboards:/var/lib/grafana/dashboards/f2:ro" in compose
    assert "../grafana/provisioning:/etc/grafana/provisioning:ro" in compose
