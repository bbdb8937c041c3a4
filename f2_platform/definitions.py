"""The `f2_platform` Dagster code location (loaded by workspace.yaml): the merge of every concern's defs().

Concerns are the packages under f2_platform/defs/; each one's `defs()` returns its own Definitions. They are
discovered, not listed, so adding a concern never means editing this file.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import dagster as dg

import f2_platform.defs as defs_package


def concern_modules(package: ModuleType = defs_package) -> list[ModuleType]:
    """The concern packages under `package`, in name order (a stable merge order)."""
    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.ispkg or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if not callable(getattr(module, "defs", None)):
            raise TypeError(f"{module.__name__} is a concern package but has no defs() function returning Definitions")
        found.append(module)
    return found


def build_definitions(package: ModuleType = defs_package) -> dg.Definitions:
    parts = []
    for module in concern_modules(package):
        part = module.defs()
        if not isinstance(part, dg.Definitions):
            raise TypeError(f"{module.__name__}.defs() returned {type(part).__name__}, not dagster.Definitions")
        parts.append(part)
    return dg.Definitions.merge(*parts)


defs = build_definitions()
