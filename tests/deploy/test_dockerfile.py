"""The platform image's Dockerfile: hadolint clean, multi-stage, locked install, non-root, nothing to build
with at run time; and the entrypoint and health check scripts it installs, run for real."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.deploy.support import DEPLOY, REPO, VENV_BIN

DOCKERFILE = DEPLOY / "Dockerfile"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"
HEALTHCHECK = DEPLOY / "docker" / "healthcheck.py"


def stages(text: str) -> list[list[str]]:
    """Instructions of each build stage (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", text)
    result: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def test_hadolint_passes() -> None:
    config = DEPLOY / ".hadolint.yaml"
    cmd = [str(VENV_BIN / "hadolint"), "--failure-threshold", "info"]
    if config.exists():
        cmd += ["--config", str(config)]
    result = subprocess.run([*cmd, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"


def build_args(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, flags=re.MULTILINE))


def resolve(line: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), line)


def test_multi_stage_locked_install_non_root_runtime() -> None:
    text = DOCKERFILE.read_text()
    args = build_args(text)
    all_stages = [[resolve(line, args) for line in stage] for stage in stages(text)]
    assert len(all_stages) >= 3, "expected a uv stage, a build stage and a runtime stage"
    build = "\n".join(line for stage in all_stages[:-1] for line in stage)
    assert "uv sync --frozen --no-dev" in build, "the build stage installs exactly what uv.lock pins"
    assert "scripts/build_native.py" in build, "the build stage compiles the processor's native frame decoder"
    runtime = all_stages[-1]
    runtime_text = "\n".join(runtime)
    users = [line.split(None, 1)[1] for line in runtime if line.upper().startswith("USER ")]
    assert users, "the runtime stage sets a USER"
    assert not re.match(r"^(0|root)\b", users[-1]), f"runtime user is root: {users[-1]}"
    assert re.match(r"^[1-9]\d*(:\d+)?$", users[-1]), f"runtime user should be numeric (runAsNonRoot): {users[-1]}"
    # No package manager or compiler in the final image; only the builder's results are copied in.
    for tool in ("apt-get", "apk ", "pip install", "gcc", "build-essential", "uv sync", "/uv"):
        assert tool not in runtime_text, f"runtime stage uses {tool!r}"
    assert any(line.startswith("COPY --from=builder /app") for line in runtime)
    assert any(line.startswith("ENTRYPOINT") for line in runtime)
    assert "slim" in runtime[0], "the runtime stage starts from a slim base"


def test_dockerignore_lets_through_only_what_the_image_runs() -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", "an allow-list starts by ignoring everything"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    for needed in (
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "f2_platform",
        "streaming",
        "certs",
        "sql",
        "deploy/docker",
        "scripts/build_native.py",
    ):
        assert needed in allowed, f"{needed} must be in the build context"
    for path in (
        "deploy/docker/entrypoint.sh",
        "deploy/docker/healthcheck.py",
        "deploy/docker/f2_init.py",
        "sql/grants.sql",
    ):
        assert (REPO / path).exists(), path
    assert not {".venv", ".cache", ".state", "tests"} & allowed


# --- the entrypoint: <NAME>_FILE -> NAME --------------------------------------------------------------------
def run_entrypoint(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(ENTRYPOINT), *command],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **env},
        check=False,
    )


def test_entrypoint_reads_secret_files(tmp_path) -> None:
    (tmp_path / "dsn").write_text("postgresql://f2_sink:s3cret@db:5432/f2\n")
    (tmp_path / "pg").write_text("pw with spaces")
    result = run_entrypoint(
        {
            "F2_TIMESERIES_DSN_FILE": str(tmp_path / "dsn"),
            "DAGSTER_PG_PASSWORD_FILE": str(tmp_path / "pg"),
            "OTHER_FILE": "/nonexistent",
        },
        "sh",
        "-c",
        'printf "%s|%s|%s|%s" "$F2_TIMESERIES_DSN" "$DAGSTER_PG_PASSWORD" '
        '"${F2_TIMESERIES_DSN_FILE-unset}" "$OTHER_FILE"',
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "postgresql://f2_sink:s3cret@db:5432/f2|pw with spaces|unset|/nonexistent"


def test_entrypoint_refuses_ambiguous_or_missing_secrets(tmp_path) -> None:
    (tmp_path / "pw").write_text("x")
    both = run_entrypoint({"F2_MQTT_PASSWORD": "y", "F2_MQTT_PASSWORD_FILE": str(tmp_path / "pw")}, "true")
    assert both.returncode == 64 and "both F2_MQTT_PASSWORD and F2_MQTT_PASSWORD_FILE" in both.stderr
    missing = run_entrypoint({"F2_MQTT_PASSWORD_FILE": str(tmp_path / "absent")}, "true")
    assert missing.returncode == 66 and "absent" in missing.stderr


def test_entrypoint_runs_the_command_in_its_place() -> None:
    result = run_entrypoint({}, "sh", "-c", "echo $$ && exit 7")
    assert result.returncode == 7


# --- the health check: 200 -> 0, anything else -> 1 ---------------------------------------------------------
@pytest.fixture()
def health_server() -> Iterator[tuple[int, dict[str, int]]]:
    state = {"code": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state["code"])
            self.end_headers()
            self.wfile.write(b'{"healthy": true}' if state["code"] == 200 else b'{"healthy": false}')

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], state
    finally:
        server.shutdown()


def test_healthcheck_script(health_server) -> None:
    port, state = health_server

    def check(*args: str) -> int:
        return subprocess.run([sys.executable, str(HEALTHCHECK), *args], capture_output=True, check=False).returncode

    assert check(str(port)) == 0
    assert check(f"http://127.0.0.1:{port}/server_info") == 0
    state["code"] = 503
    assert check(str(port)) == 1
    server_gone = check("1")  # nothing listens on port 1
    assert server_gone == 1
    assert check() == 2
