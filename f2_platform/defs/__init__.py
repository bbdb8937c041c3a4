"""One package per concern; each exposes `defs() -> dagster.Definitions`.

f2_platform/definitions.py discovers every package here and merges their definitions, so a new concern
(quality checks, analytics, ...) is a new folder with a `defs()` function, and nothing else to edit.
Resources live in `resources/` and are available to every concern by key. Plain modules here (such as
asset_keys.py) hold shared names and are not concerns.
"""
