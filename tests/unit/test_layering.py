"""The packages' import rules (tests/layering.py) hold on the whole tree, and the checker sees a breach."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.layering import ALLOWED, imported_modules, violations

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package: str) -> None:
    found = violations(REPO, package)
    assert not found, f"{package} imports packages it must not:\n" + "\n".join(map(str, found))


def _tree_with(tmp_path: Path, relative: str, source: str) -> Path:
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.relative_to(tmp_path).parents:
        if str(parent) != ".":
            (tmp_path / parent / "__init__.py").touch()
    path.write_text(source)
    return tmp_path


@pytest.mark.parametrize(
    "source",
    [
        "from f2_platform.settings import StackSettings\n",
        "import f2_platform.connections\n",
        "def main():\n    from f2_platform.connections import resolve_connections\n",
        "from f2_platform import settings\n",
        "import importlib\nimportlib.import_module('f2_platform.settings')\n",
        "from simulator.frames import encode_frame\n",
    ],
)
def test_an_upward_import_in_streaming_is_reported(tmp_path: Path, source: str) -> None:
    root = _tree_with(tmp_path, "streaming/decoding/payload.py", source)
    found = violations(root, "streaming")
    assert [(str(v.path), v.line) for v in found][:1] == [("streaming/decoding/payload.py", source.count("\n"))]


def test_relative_imports_are_resolved() -> None:
    names = [
        name for _, name in imported_modules("from ..settings import X\nfrom . import rows\n", "streaming.sink.daemon")
    ]
    assert names == ["streaming.settings", "streaming.settings.X", "streaming.sink", "streaming.sink.rows"]


def test_the_products_own_imports_pass(tmp_path: Path) -> None:
    root = _tree_with(tmp_path, "f2_platform/cli/x.py", "from streaming.settings import ConnectionSettings\n")
    assert violations(root, "f2_platform") == []
    root = _tree_with(tmp_path, "certs/x.py", "from streaming.settings import ConnectionSettings\n")
    assert [v.imported for v in violations(root, "certs")] == [
        "streaming.settings",
        "streaming.settings.ConnectionSettings",
    ]


@pytest.mark.parametrize(
    "source",
    [
        "from streaming.decoding.topology import WiredDevice\n",
        "from streaming import decoding\n",
        "import streaming.decoding.hex\n",
        "from f2_platform.registry.sample import TEMPLATES\n",
    ],
)
def test_the_simulator_shares_no_decoding_or_sample_registry_with_the_platform(tmp_path: Path, source: str) -> None:
    root = _tree_with(tmp_path, "simulator/endpoints.py", source)
    assert [(str(v.path), v.line) for v in violations(root, "simulator")][:1] == [("simulator/endpoints.py", 1)]


def test_the_simulator_may_use_the_platforms_settings_and_seeding(tmp_path: Path) -> None:
    source = "from streaming.settings import ConnectionSettings\nfrom f2_platform.registry.seed import seed_fleet\n"
    root = _tree_with(tmp_path, "simulator/cli.py", source)
    assert violations(root, "simulator") == []
