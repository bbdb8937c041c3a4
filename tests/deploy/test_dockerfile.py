"""The platform image's Dockerfile: hadolint clean, multi-stage, the project installed from the wheel its own
stage builds (tests/deploy/test_wheel.py builds that wheel from the same files), locked dependencies, non-root,
nothing to build with at run time; and the entrypoint and health check scripts it installs, run for real."""

from __future__ import annotations

import http.server
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.deploy.dockerfile import (
    DOCKERFILE,
    build_args,
    context_files,
    context_sources,
    let_through,
    named_stages,
    resolve,
    stages,
)
from tests.deploy.support import DEPLOY, REPO, VENV_BIN

ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"
HEALTHCHECK = DEPLOY / "docker" / "healthcheck.py"


def test_hadolint_passes() -> None:
    config = DEPLOY / ".hadolint.yaml"
    cmd = [str(VENV_BIN / "hadolint"), "--failure-threshold", "info"]
    if config.exists():
        cmd += ["--config", str(config)]
    result = subprocess.run([*cmd, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"


def test_multi_stage_locked_install_non_root_runtime() -> None:
    text = DOCKERFILE.read_text()
    args = build_args(text)
    all_stages = [[resolve(line, args) for line in stage] for stage in stages(text)]
    assert len(all_stages) >= 3, "expected a uv stage, a build stage and a runtime stage"
    build = "\n".join(line for stage in all_stages[:-1] for line in stage)
    assert "uv sync --frozen --no-dev" in build, "the build stage installs exactly what uv.lock pins"
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
    assert re.search(r"^ENV .*\bF2_PROJECT_DIR=/app\b", runtime_text, flags=re.MULTILINE), (
        "the installed wheel holds only the packages: the runtime names where sql/, dbt/ and workspace.yaml are"
    )


def test_the_project_is_installed_from_the_wheel_its_own_stage_builds() -> None:
    text = DOCKERFILE.read_text()
    named = named_stages(text)
    assert {"wheel", "builder", "runtime"} <= named.keys(), list(named)
    wheel, builder = "\n".join(named["wheel"]), "\n".join(named["builder"])
    # The wheel stage compiles the C extensions through the build backend, and alone has a compiler.
    assert re.search(r"\buv build --wheel --out-dir (\S+)", wheel), "the wheel stage runs `uv build --wheel`"
    out_dir = re.search(r"\buv build --wheel --out-dir (\S+)", wheel).group(1)  # type: ignore[union-attr]
    assert "gcc" in wheel and "libc6-dev" in wheel, "the wheel stage installs a compiler for the extensions"
    assert "gcc" not in builder, "only the wheel stage compiles"
    # The builder installs that wheel, with no dependencies of its own resolution, into the locked venv...
    install = re.search(r"--mount=type=bind,from=wheel,source=(\S+),target=(\S+).*\buv pip install (.*)", builder)
    assert install, "the build stage mounts the wheel stage's output and installs from it"
    source, target, arguments = install.groups()
    assert source == out_dir, f"the build stage mounts {source}, the wheel stage writes {out_dir}"
    assert "--no-deps" in arguments, "dependencies come from uv.lock (uv sync), not from the wheel's metadata"
    wheels = [word for word in shlex.split(arguments) if word.endswith(".whl")]
    assert wheels and all(word.startswith(f"{target}/f2_platform-") for word in wheels), arguments
    # ... proves both extensions load from it ...
    assert "import streaming.decoding._frame_records, streaming.sink._copy_rows" in builder
    # ... and takes no Python of the project from the build context: the packages come from the wheel only.
    for stage_name in ("builder", "runtime"):
        for source in context_sources(named[stage_name]):
            top = source.split("/")[0]
            assert top not in {"f2_platform", "streaming", "certs", "simulator", "bench", "tests", "."}, (
                f"the {stage_name} stage copies {source} from the build context; the wheel brings the packages"
            )


def test_every_path_the_image_takes_from_the_context_is_let_through() -> None:
    text = DOCKERFILE.read_text()
    for name, instructions in named_stages(text).items():
        for source in context_sources(instructions):
            assert (REPO / source).exists(), f"stage {name} copies {source}, which the repository does not hold"
            assert let_through(source), f"stage {name} copies {source}, which .dockerignore keeps out"
            if (REPO / source).is_dir():
                assert context_files([source]), f"stage {name} copies {source}, whose files .dockerignore keeps out"
    wheel_files = context_files(context_sources(named_stages(text)["wheel"]))
    for needed in ("setup.py", "pyproject.toml", "streaming/decoding/_frame_records.c", "streaming/sink/_copy_rows.c"):
        assert needed in wheel_files, f"the wheel stage does not get {needed}"
    built_here = [path for path in wheel_files if path.endswith(".so") or "__pycache__" in path]
    assert not built_here, f"libraries or bytecode built in the checkout reach the image: {built_here}"


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
        "setup.py",
    ):
        assert needed in allowed, f"{needed} must be in the build context"
    for path in (
        "deploy/docker/entrypoint.sh",
        "deploy/docker/healthcheck.py",
        "deploy/docker/f2_init.py",
        "sql/grants.sql",
    ):
        assert (REPO / path).exists(), path
    assert not {".venv", ".cache", ".state", "tests", "simulator", "bench", "build", "dist"} & allowed


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
