"""The project's wheel, as the build backend makes it: the three product packages with their package data and
both C extensions compiled, nothing of the simulator, the bench or the tests; built as well from exactly the
files the image's wheel stage copies (deploy/Dockerfile), and, installed beside the locked dependencies as the
image's build stage does, running from outside the checkout with both extensions loaded."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.deploy.dockerfile import DOCKERFILE, context_files, context_sources, named_stages
from tests.deploy.support import REPO

UV = REPO / ".cache" / "tools" / "bin" / "uv"
PACKAGES = {"f2_platform", "streaming", "certs"}
EXTENSIONS = ("streaming/decoding/_frame_records", "streaming/sink/_copy_rows")
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
TEMPLATE = "f2_platform/quality/report/templates/data_quality.html.j2"


def uv(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert UV.is_file(), f"{UV} is missing: run make provision"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return subprocess.run([str(UV), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def build_wheel(source: Path, out: Path) -> Path:
    result = uv("build", "--wheel", "--out-dir", str(out), "--python", sys.executable, str(source))
    assert result.returncode == 0, f"uv build failed:\n{result.stdout}{result.stderr}"
    wheels = sorted(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def copy_files(paths: list[str], into: Path) -> None:
    for path in paths:
        if (REPO / path).is_file():  # a tracked file deleted in the working tree is not there to copy
            (into / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / path, into / path)


def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.fixture(scope="module")
def checkout_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of the whole checkout (every file git tracks or would track: simulator, bench and tests
    included), so that what stays out of it is decided by the build configuration alone. The checkout's own
    built libraries are ignored files, so they are not copied: the build compiles its own."""
    source = tmp_path_factory.mktemp("checkout")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    copy_files(listed, source)
    assert not list(source.rglob("*.so")), "no library may reach the build from the checkout"
    return build_wheel(source, tmp_path_factory.mktemp("checkout-dist"))


@pytest.fixture(scope="module")
def image_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from what the image's wheel stage copies into its build folder, and nothing else."""
    stage = named_stages(DOCKERFILE.read_text())["wheel"]
    for line in stage:
        words = [word for word in shlex.split(line) if not word.startswith("--")]
        if words[0].upper() == "COPY" and "--from=" not in line:
            # Each source lands at its own relative path, so copying by path is what the stage does.
            *sources, target = words[1:]
            assert target == "./" or sources == [target], f"the wheel stage moves files: {line}"
    source = tmp_path_factory.mktemp("image-context")
    copy_files(context_files(context_sources(stage)), source)
    return build_wheel(source, tmp_path_factory.mktemp("image-dist"))


def test_wheel_holds_the_product_packages_and_both_compiled_extensions(checkout_wheel: Path) -> None:
    files = names(checkout_wheel)
    tops = {name.split("/")[0] for name in files if not name.split("/")[0].endswith(".dist-info")}
    assert tops == PACKAGES, f"the wheel's top-level entries: {sorted(tops)}"
    for extension in EXTENSIONS:
        assert f"{extension}{SUFFIX}" in files, f"{extension}{SUFFIX} is not in the wheel"
    assert TEMPLATE in files, "the data-quality report's template is package data"
    assert not [name for name in files if name.endswith(".c")], "the wheel carries built libraries, not C sources"
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *PACKAGES],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    modules = {path for path in tracked if path.endswith(".py") and (REPO / path).is_file()}
    assert modules and modules <= files, f"modules missing from the wheel: {sorted(modules - files)}"
    entry_points = next(name for name in files if name.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(checkout_wheel) as archive:
        assert "f2 = f2_platform.cli.main:cli" in archive.read(entry_points).decode()


def test_wheel_holds_no_development_tool(checkout_wheel: Path) -> None:
    for tool in ("simulator", "bench", "tests"):
        assert (REPO / tool).is_dir(), f"the checkout holds {tool}/, so its absence from the wheel means something"
        inside = [name for name in names(checkout_wheel) if name.startswith(f"{tool}/") or f"/{tool}/" in name]
        assert not inside, f"{tool} in the wheel: {inside[:5]}"


def test_the_image_wheel_stage_builds_the_same_wheel(checkout_wheel: Path, image_wheel: Path) -> None:
    def contents(wheel: Path) -> set[str]:
        return {name for name in names(wheel) if ".dist-info/" not in name}

    assert contents(image_wheel) == contents(checkout_wheel)


PROBE = textwrap.dedent(
    """
    import importlib.util, json, sys
    import streaming.decoding.native as frames
    import streaming.sink.rows as rows
    found = {name: importlib.util.find_spec(name) is not None for name in ("simulator", "bench", "tests")}
    print(json.dumps({
        "frame_records": frames._EXTENSION.__file__ if frames._EXTENSION else None,
        "copy_rows": sys.modules["streaming.sink._copy_rows"].__file__ if rows.NATIVE else None,
        "stamp": frames._EXTENSION.format_stamp(1_772_359_200_000_042) if frames._EXTENSION else None,
        "copy_empty": rows.native_copy_binary([]).hex() if rows.NATIVE else None,
        "development_tools": found,
    }))
    """
)
MIGRATIONS = textwrap.dedent(
    """
    from f2_platform.db.migrations import discover
    from f2_platform.errors import MigrationError
    try:
        print(len(discover("registry")))
    except MigrationError as exc:
        print(exc)
    """
)


def test_the_installed_wheel_runs_from_outside_the_checkout(image_wheel: Path, tmp_path: Path) -> None:
    import json

    venv = tmp_path / "venv"
    made = uv("venv", "--quiet", "--python", sys.executable, str(venv))
    assert made.returncode == 0, made.stderr
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # The locked dependencies, as the image's `uv sync --no-install-project` provides them: this checkout's
    # venv, added as a plain path (its editable install's .pth is not processed through such a line).
    (site / "f2-locked-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = uv("pip", "install", "--python", str(venv / "bin" / "python"), "--no-deps", str(image_wheel))
    assert installed.returncode == 0, installed.stderr

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "F2_PROJECT_DIR", "VIRTUAL_ENV")}
    work = tmp_path / "elsewhere"
    work.mkdir()

    def run(*command: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=work, env={**env, **extra}, capture_output=True, text=True, timeout=120, check=False
        )

    probe = run(str(venv / "bin" / "python"), "-c", PROBE)
    assert probe.returncode == 0, probe.stderr
    report = json.loads(probe.stdout)
    for key, extension in (("frame_records", EXTENSIONS[0]), ("copy_rows", EXTENSIONS[1])):
        assert report[key] == str(site / f"{extension}{SUFFIX}"), f"{key} not loaded from the wheel: {report[key]}"
    assert report["stamp"] == "2026-03-01T10:00:00.000042Z"
    assert report["copy_empty"] == (b"PGCOPY\n\xff\r\n\x00" + bytes(8) + b"\xff\xff").hex()
    assert report["development_tools"] == {"simulator": False, "bench": False, "tests": False}

    cli = run(str(venv / "bin" / "f2"), "--help")
    assert cli.returncode == 0 and "processor" in cli.stdout, cli.stdout + cli.stderr

    # sql/, dbt/ and workspace.yaml are not in the wheel: F2_PROJECT_DIR names them (the image sets /app).
    expected = len(list((REPO / "sql" / "registry").glob("*.sql")))
    with_setting = run(str(venv / "bin" / "python"), "-c", MIGRATIONS, F2_PROJECT_DIR=str(REPO))
    assert with_setting.stdout.strip() == str(expected), with_setting.stdout + with_setting.stderr
    without = run(str(venv / "bin" / "python"), "-c", MIGRATIONS)
    assert "F2_PROJECT_DIR" in without.stdout and str(site) in without.stdout, without.stdout + without.stderr
