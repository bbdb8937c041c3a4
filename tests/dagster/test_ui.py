"""The demo's Dagster UI: `f2 dagster dev` on the test stack, opened in headless Chromium; the assets are
on the page and a screenshot is saved under the test's tmp folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from f2_platform.stack.ports import free_port
from tests.pipeline import env_without_proxy

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]
# Asset keys as the UI writes them in a page's address (the Kafka topics under the prefix kafka).
ASSETS = (
    "kafka/f2_raw",
    "kafka/f2_decoded",
    "kafka/f2_deadletter",
    "decoded_data",
    "readings_hourly",
    "readings_daily",
    "decoded_data_compression",
    "timeseries_retention",
)
# Names the lineage graph prints in full (long ones are shortened in their boxes).
GRAPH_NODES = ("f2_raw", "f2_decoded", "f2_deadletter", "decoded_data", "readings_hourly", "readings_daily")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers(url: str) -> bool:
    try:
        with _NO_PROXY.open(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.fixture(scope="module")
def dagster_ui(migrated, stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = env_without_proxy(stack_env) | {
        "F2_DAGSTER_ENVIRONMENT": "ci",
        "DAGSTER_TELEMETRY_ENABLED": "false",
    }
    log = tmp_path_factory.mktemp("dagster-dev") / "dagster-dev.log"
    # `f2 dagster dev`, the command `make demo` runs (called through its click group).
    command = [
        sys.executable,
        "-c",
        "from f2_platform.cli.dagster import dagster_group; dagster_group()",
        "dev",
        "--port",
        str(port),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not answers(f"{url}/server_info"):
            assert proc.poll() is None, f"f2 dagster dev exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the UI did not answer within 180 s:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        yield url
    finally:
        if proc.poll() is None:
            # Its own session: dagster dev, its webserver, daemon and code server stop together.
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    home = Path(stack_env["F2_STATE_DIR"]) / "dagster"
    assert (home / "dagster.yaml").exists() and (home / "storage").is_dir()


def test_assets_are_shown_in_the_ui(dagster_ui: str, tmp_path: Path) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # The catalog (the code location may still be loading: wait for its first rows). It lists the assets
            # alphabetically in a virtual list that draws only the rows on screen, so each asset is looked up on
            # its own page: the UI knows it when the page shows its lineage (a key it does not know has none).
            page.goto(f"{dagster_ui}/assets", wait_until="domcontentloaded")
            page.get_by_text("Code location / Asset group").first.wait_for(timeout=120_000)
            page.screenshot(path=str(tmp_path / "assets.png"), full_page=True)
            missing = []
            for key in ASSETS:
                page.goto(f"{dagster_ui}/assets/{key}", wait_until="domcontentloaded")
                try:
                    page.get_by_text("Upstream assets").first.wait_for(timeout=60_000)
                except PlaywrightTimeoutError:
                    missing.append(key)
                    continue
                if key.split("/")[-1] not in page.inner_text("body"):
                    missing.append(key)
            assert not missing, f"the UI has no page for {missing}"

            # The global asset lineage, groups expanded: the streaming path feeding aggregates and storage.
            page.goto(f"{dagster_ui}/asset-groups", wait_until="domcontentloaded")
            for group in ("streaming", "aggregates", "storage_policy"):
                node = page.get_by_text(group, exact=True).last  # the graph's group node (after the sidebar's)
                node.wait_for(timeout=60_000)
                node.dblclick()
            for name in GRAPH_NODES:
                page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
            page.wait_for_timeout(1000)  # let the layout settle before the picture
            page.screenshot(path=str(tmp_path / "asset-graph.png"), full_page=True)
        finally:
            browser.close()
    for picture in ("assets.png", "asset-graph.png"):
        assert (tmp_path / picture).stat().st_size > 10_000
