"""The import rules of the repository's packages, checked on the source (no import is executed).

Dependencies point one way: `f2_platform` -> `streaming` -> nothing of ours; `certs` stands apart; the
development tools (`simulator`, `bench`) and the tests sit on top and are never imported by the product.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OURS = ("f2_platform", "streaming", "certs", "simulator", "bench", "tests")
# package -> the packages of ours it may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "streaming": frozenset(),
    "certs": frozenset(),
    "f2_platform": frozenset({"streaming", "certs"}),
    "simulator": frozenset({"streaming", "f2_platform", "certs"}),
    "bench": frozenset({"streaming", "f2_platform", "certs", "simulator"}),
}
# package -> modules of ours it must not import although ALLOWED grants their package. The simulator is the
# platform's oracle: it keeps its own catalog, encoder and topics, and never shares the platform's decoding,
# topology or sample registry, so a mistake there cannot be made on both sides of the reconciliation.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "simulator": ("streaming.decoding", "f2_platform.registry.sample"),
}


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    imported: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.imported}"


def imported_modules(source: str, module: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import statement in `source`, at any depth, relative ones
    resolved against `module` (the dotted name of the file), and of importlib.import_module("...") calls."""
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield node.lineno, name
            for alias in node.names:  # `from streaming import processor` imports streaming.processor too
                yield node.lineno, f"{name}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def violations(root: Path, package: str) -> list[Violation]:
    """Imports in `root/package` of our packages that ALLOWED does not grant it, or that FORBIDDEN names."""
    allowed = ALLOWED[package] | {package}
    found: list[Violation] = []
    for path in sorted((root / package).rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        for line, name in imported_modules(path.read_text(), module):
            top = name.split(".")[0]
            forbidden = any(name == f or name.startswith(f + ".") for f in FORBIDDEN.get(package, ()))
            if (top in OURS and top not in allowed) or forbidden:
                found.append(Violation(path.relative_to(root), line, name))
    return found
