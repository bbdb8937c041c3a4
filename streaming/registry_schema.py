"""The registry's schema name (setting F2_REGISTRY_SCHEMA, default `VtDevice`) and SQL written against it.

Registry SQL throughout the platform names the schema `"VtDevice"`, as the reference deployment does; a
deployment whose registry lives in another schema sets F2_REGISTRY_SCHEMA, and `in_schema` puts that name,
validated and quoted, where the SQL says `"VtDevice"`. Only a plain identifier is accepted (letters, digits,
`_` and `$`, not starting with a digit, at most 63 bytes, not `pg_*`), so the substitution can never carry
anything but a schema name into a statement.
"""

from __future__ import annotations

import re
from typing import Final

DEFAULT_SCHEMA: Final[str] = "VtDevice"
# How registry SQL in this repository names the schema; in_schema replaces exactly this token.
SCHEMA_TOKEN: Final[str] = '"VtDevice"'
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_MAX_BYTES: Final[int] = 63  # PostgreSQL's NAMEDATALEN - 1: longer names are silently truncated


def schema_name_problem(name: str) -> str | None:
    """Why `name` cannot be the registry's schema name (None when it can)."""
    if not _IDENTIFIER.fullmatch(name):
        return (
            f"registry schema name {name!r} is not a plain identifier: use letters, digits, '_' or '$', "
            "not starting with a digit (for example VtDevice)"
        )
    if len(name.encode()) > _MAX_BYTES:
        return f"registry schema name {name!r} is longer than {_MAX_BYTES} bytes; PostgreSQL would truncate it"
    if name.lower().startswith("pg_"):
        return f"registry schema name {name!r} starts with pg_, which PostgreSQL reserves for system schemas"
    return None


def validate_schema_name(name: str) -> str:
    """`name` when it is a usable registry schema name; ValueError saying what is wrong otherwise."""
    problem = schema_name_problem(name)
    if problem is not None:
        raise ValueError(problem + " (setting F2_REGISTRY_SCHEMA)")
    return name


def quoted_schema(name: str) -> str:
    """The schema name as a quoted SQL identifier (case kept, as the reference's "VtDevice")."""
    return '"' + validate_schema_name(name) + '"'


def in_schema(sql: str, schema: str) -> str:
    """`sql`, written against "VtDevice", for a registry in `schema`."""
    if schema == DEFAULT_SCHEMA:
        return sql
    return sql.replace(SCHEMA_TOKEN, quoted_schema(schema))
