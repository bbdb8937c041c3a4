"""A real Prometheus (Debian's /usr/bin/prometheus) for the live tests: private data folder, free port, 1 s
scrape and evaluation intervals, a configuration generated from deploy/prometheus/prometheus.yml that points
each F2 job at the given targets, and the F2 rules with every `for:` shortened so alerts fire in seconds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from f2_platform.stack.ports import free_port
from tests.deploy.support import PROMETHEUS, PROMETHEUS_DIR

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Prometheus:
    def __init__(
        self,
        workdir: Path,
        targets: dict[str, list[str]],
        alert_for: str = "1s",
        ca_file: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.targets = targets
        # Replaces the tls_config CA of the HTTPS jobs (the Compose path /run/secrets/f2_ca_cert).
        self.ca_file = ca_file
        self.alert_for = alert_for
        self.port = free_port()
        self.data = workdir / "data"
        self.log = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle ------------------------------------------------------------------------------------------
    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
        jobs = []
        for job in config["scrape_configs"]:
            if job["job_name"] in self.targets:
                job["static_configs"] = [{"targets": self.targets[job["job_name"]]}]
                if "tls_config" in job and self.ca_file is not None:
                    job["tls_config"]["ca_file"] = str(self.ca_file)
                jobs.append(job)
        missing = set(self.targets) - {job["job_name"] for job in jobs}
        assert not missing, f"prometheus.yml has no job {missing}"
        config["scrape_configs"] = jobs
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        shutil.copy(PROMETHEUS_DIR / "recording_rules.yml", self.workdir / "recording_rules.yml")
        alerts = yaml.safe_load((PROMETHEUS_DIR / "alert_rules.yml").read_text())
        for group in alerts["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = self.alert_for
        (self.workdir / "alert_rules.yml").write_text(yaml.safe_dump(alerts))
        return self.workdir / "prometheus.yml"

    def start(self, timeout: float = 30) -> None:
        config = self.write_config()
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
            )
        self.wait(lambda: self._ready(), timeout, "Prometheus ready")

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            with _NO_PROXY.open(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.data, ignore_errors=True)

    # --- HTTP API -------------------------------------------------------------------------------------------
    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with _NO_PROXY.open(f"{self.url}/api/v1/{path}{query}", timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def target_health(self) -> dict[str, list[str]]:
        health: dict[str, list[str]] = {}
        for target in self.api("targets")["activeTargets"]:
            health.setdefault(target["labels"]["job"], []).append(target["health"])
        return health

    def alerts(self) -> list[dict[str, Any]]:
        return self.api("alerts")["alerts"]

    def firing(self, name: str, **labels: str) -> list[dict[str, Any]]:
        return [
            a
            for a in self.alerts()
            if a["state"] == "firing"
            and a["labels"]["alertname"] == name
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]

    @staticmethod
    def wait(condition: Callable[[], object], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for {what}")
            time.sleep(0.5)
