"""deploy/Dockerfile and .dockerignore read as Docker reads them, for the tests that validate the image where
there is no container engine: the build stages, what each takes from the build context, and which files of
the checkout the context lets through."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from tests.deploy.support import DEPLOY, REPO

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def stages(text: str) -> list[list[str]]:
    """Instructions of each build stage (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", text)
    result: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def named_stages(text: str) -> dict[str, list[str]]:
    """The stages that have a name (`FROM image AS name`), by name."""
    named = {}
    for stage in stages(text):
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", stage[0], flags=re.IGNORECASE)
        if match:
            named[match.group(1)] = stage
    return named


def build_args(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, flags=re.MULTILINE))


def resolve(line: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), line)


def context_sources(instructions: list[str]) -> list[str]:
    """The build-context paths a stage reads: COPY/ADD sources and bind mounts without --from."""
    sources: list[str] = []
    for line in instructions:
        words = shlex.split(line)
        keyword = words[0].upper()
        if keyword in ("COPY", "ADD"):
            flags = [w for w in words[1:] if w.startswith("--")]
            if not any(flag.startswith("--from=") for flag in flags):
                sources += [w for w in words[1:] if not w.startswith("--")][:-1]
        elif keyword == "RUN":
            for mount in re.findall(r"--mount=(\S+)", line):
                options = dict(part.split("=", 1) for part in mount.split(",") if "=" in part)
                if options.get("type") == "bind" and "from" not in options:
                    sources.append(options.get("source", "."))
    return [source.rstrip("/") or "." for source in sources]


def ignore_rules() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern(rule: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*/?|\*|\?)", rule.strip("/"))
    translated = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(translated.get(part, re.escape(part)) for part in parts))


def let_through(path: str, rules: list[str] | None = None) -> bool:
    """Whether the build context holds `path` (relative to the repository): the last rule that matches the path
    or one of its parent folders decides, a `!` rule letting it through."""
    rules = ignore_rules() if rules is None else rules
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    included = True
    for rule in rules:
        negated = rule.startswith("!")
        pattern = _pattern(rule[1:] if negated else rule)
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            included = negated
    return included


def context_files(sources: list[str]) -> list[str]:
    """Every file of the checkout under `sources` that the build context lets through (relative paths)."""
    rules = ignore_rules()
    files: list[str] = []
    for source in sources:
        root = REPO / source
        if root.is_file():
            candidates = [source]
        else:
            candidates = [
                str((Path(folder) / name).relative_to(REPO)) for folder, _, names in os.walk(root) for name in names
            ]
        files += [path for path in candidates if let_through(path, rules)]
    return sorted(files)
