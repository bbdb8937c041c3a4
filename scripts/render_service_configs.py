#!/usr/bin/env python3
"""Writes the Compose deployment's Mosquitto, Redis and Kafka configurations from the shared definitions.

The local stack renders its own from the same definitions (f2_platform/stack/service_config.py) at every
`f2 stack up`; the Compose files are committed because Compose mounts them. Edit the definitions, then:

    python3 scripts/render_service_configs.py           # rewrite the files under deploy/compose/
    python3 scripts/render_service_configs.py --check   # exit 1, naming every file that differs

tests/deploy/test_service_configs.py fails while a committed file differs from what this writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMPOSE_DIR = REPO / "deploy" / "compose"
# Runs from a checkout with any Python 3.11: the definitions need nothing but the standard library.
sys.path.insert(0, str(REPO))

from f2_platform.stack.service_config import compose_configs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file differs")
    args = parser.parse_args(argv)
    differ = []
    for relative, text in compose_configs().items():
        path = COMPOSE_DIR / relative
        if path.exists() and path.read_text() == text:
            continue
        differ.append(path.relative_to(REPO))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check:
        for path in differ:
            print(f"{path} differs from its definition: run scripts/render_service_configs.py", file=sys.stderr)
        return 1 if differ else 0
    print("wrote " + ", ".join(map(str, differ)) if differ else "every file is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
