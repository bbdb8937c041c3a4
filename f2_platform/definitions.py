"""The `f2_platform` Dagster code location (workspace.yaml): every definition Dagster's defs-folder loader
finds under f2_platform/defs/ (dg.toml names that folder).

Each Python module there contributes the assets, checks, jobs, schedules and sensors it defines at module
level (and lists of them); a module with a `@dg.definitions` function contributes what it returns instead
(the resources). Adding a concern is adding a folder; nothing here lists them.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
