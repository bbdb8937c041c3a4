"""The code location's defs folder, loaded by Dagster (`dg.load_from_defs_folder`, f2_platform/definitions.py).

One package per concern (aggregates, quality, analytics, ...); every Dagster object a module defines at module
level is found, so a new concern is a new folder and nothing else to edit. Resources live in `resources/` and
are available to every concern by key. Modules without Dagster objects (asset_keys.py, helpers) add nothing.
"""
