"""F2_PROJECT_DIR: where sql/, dbt/ and workspace.yaml are found, the checkout by default; and the clear error
of a migration run that finds no sql/ (an installed wheel without the setting) instead of applying nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from f2_platform.db.migrations import discover
from f2_platform.errors import MigrationError
from f2_platform.settings import ProjectSettings

CHECKOUT = Path(__file__).resolve().parents[2]


def test_the_checkout_is_the_default(monkeypatch) -> None:
    monkeypatch.delenv("F2_PROJECT_DIR", raising=False)
    assert ProjectSettings().project_dir == CHECKOUT
    assert (CHECKOUT / "sql" / "registry").is_dir() and (CHECKOUT / "workspace.yaml").is_file()


def test_the_setting_names_another_folder(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("F2_PROJECT_DIR", str(tmp_path))
    assert ProjectSettings().project_dir == tmp_path


def test_migrations_without_a_sql_folder_say_which_setting_to_fix(tmp_path) -> None:
    with pytest.raises(MigrationError) as caught:
        discover("registry", tmp_path / "sql")
    message = str(caught.value)
    assert str(tmp_path / "sql" / "registry") in message and "F2_PROJECT_DIR" in message


def test_migrations_of_the_checkout_are_found() -> None:
    expected = sorted(path.name for path in (CHECKOUT / "sql" / "timeseries").glob("*.sql"))
    assert expected, "the checkout has time-series migrations"
    assert [m.path.name for m in discover("timeseries", CHECKOUT / "sql")] == expected
