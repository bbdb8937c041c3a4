"""The registry's schema name for the enrollment service (F2_REGISTRY_SCHEMA, default `VtDevice`).

certs imports nothing of the platform, so it checks the name itself, by the same rule as the platform
(streaming/registry_schema.py): a plain identifier, which the statements then quote.
"""

from __future__ import annotations

import re
from typing import Final

DEFAULT_SCHEMA: Final = "VtDevice"
SCHEMA_TOKEN: Final = '"VtDevice"'
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def validate_schema_name(name: str) -> str:
    """`name` when it is a usable schema name; ValueError saying what is wrong otherwise."""
    if not _IDENTIFIER.fullmatch(name) or len(name.encode()) > 63 or name.lower().startswith("pg_"):
        raise ValueError(
            f"registry schema name {name!r} is not a plain identifier of at most 63 bytes (letters, digits, '_' or "
            "'$', not starting with a digit or pg_; for example VtDevice): setting F2_REGISTRY_SCHEMA"
        )
    return name


def in_schema(statement: str, schema: str) -> str:
    """`statement`, written against "VtDevice", for a registry in `schema`."""
    return statement.replace(SCHEMA_TOKEN, '"' + validate_schema_name(schema) + '"')
