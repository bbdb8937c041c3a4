"""Compile the processor's native hot path (streaming/_frame_records.c) next to its source.

Run by scripts/provision.sh (so `make demo` and `make test` build it) and by deploy/Dockerfile. Rebuilds only
when the source, this script or the interpreter changed; writes to a temporary file and renames it, so a
daemon importing the module meanwhile never sees half a library. Without the library the processor still
works, on the pure-Python path, and says so in its log and health.

    python scripts/build_native.py [--check]   # --check: exit 1 when the library is missing or stale
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "streaming" / "_frame_records.c"
TARGET = ROOT / "streaming" / f"_frame_records{sysconfig.get_config_var('EXT_SUFFIX')}"
STAMP = TARGET.with_name(TARGET.name + ".sha256")
FLAGS = ["-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing", "-std=c11"]


def fingerprint() -> str:
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), Path(__file__).read_bytes(), sys.version.encode(), " ".join(FLAGS).encode()):
        digest.update(part)
    return digest.hexdigest()


def up_to_date(expected: str) -> bool:
    return TARGET.is_file() and STAMP.is_file() and STAMP.read_text().strip() == expected


def compiler() -> str:
    for candidate in (os.environ.get("CC"), "cc", "gcc"):
        if candidate and shutil.which(candidate):
            return candidate
    raise SystemExit("build_native: no C compiler (cc or gcc) found; install build-essential")


def build(expected: str) -> None:
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").is_file():
        raise SystemExit(f"build_native: Python.h not found in {include}; install the interpreter's headers")
    with tempfile.TemporaryDirectory(dir=TARGET.parent) as tmp:
        out = Path(tmp) / TARGET.name
        command = [compiler(), *FLAGS, f"-I{include}", str(SOURCE), "-o", str(out)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"build_native: {' '.join(command)} failed:\n{result.stdout}{result.stderr}")
        os.replace(out, TARGET)
    STAMP.write_text(expected + "\n")


def main(argv: list[str]) -> int:
    expected = fingerprint()
    if up_to_date(expected):
        print(f"    {TARGET.relative_to(ROOT)} is up to date")
        return 0
    if "--check" in argv:
        print(f"build_native: {TARGET.relative_to(ROOT)} is missing or stale; run scripts/build_native.py")
        return 1
    build(expected)
    print(f"    built {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
