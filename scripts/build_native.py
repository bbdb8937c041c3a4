"""Compile the daemons' native hot paths next to their sources: the processor's frame decoder
(streaming/decoding/_frame_records.c) and the sink's COPY formatter (streaming/sink/_copy_rows.c).

Run by scripts/provision.sh (so `make demo` and `make test` build them) and by deploy/Dockerfile. Rebuilds a
library only when its source, this script or the interpreter changed; writes to a temporary file and renames
it, so a daemon importing the module meanwhile never sees half a library. Without a library its daemon still
works, on the pure-Python path, and says so in its log and health.

    python scripts/build_native.py [--check]   # --check: exit 1 when a library is missing or stale
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
MODULES = ("streaming/decoding/_frame_records", "streaming/sink/_copy_rows")
FLAGS = ["-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing", "-std=c11"]


class Extension:
    def __init__(self, module: str) -> None:
        self.source = ROOT / f"{module}.c"
        self.target = ROOT / f"{module}{sysconfig.get_config_var('EXT_SUFFIX')}"
        self.stamp = self.target.with_name(self.target.name + ".sha256")
        self.name = str(self.target.relative_to(ROOT))

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for part in (
            self.source.read_bytes(),
            Path(__file__).read_bytes(),
            sys.version.encode(),
            " ".join(FLAGS).encode(),
        ):
            digest.update(part)
        return digest.hexdigest()

    def up_to_date(self, expected: str) -> bool:
        return self.target.is_file() and self.stamp.is_file() and self.stamp.read_text().strip() == expected


def compiler() -> str:
    for candidate in (os.environ.get("CC"), "cc", "gcc"):
        if candidate and shutil.which(candidate):
            return candidate
    raise SystemExit("build_native: no C compiler (cc or gcc) found; install build-essential")


def build(extension: Extension, expected: str) -> None:
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").is_file():
        raise SystemExit(f"build_native: Python.h not found in {include}; install the interpreter's headers")
    with tempfile.TemporaryDirectory(dir=extension.target.parent) as tmp:
        out = Path(tmp) / extension.target.name
        command = [compiler(), *FLAGS, f"-I{include}", str(extension.source), "-o", str(out)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"build_native: {' '.join(command)} failed:\n{result.stdout}{result.stderr}")
        os.replace(out, extension.target)
    extension.stamp.write_text(expected + "\n")


def main(argv: list[str]) -> int:
    stale = 0
    for extension in map(Extension, MODULES):
        expected = extension.fingerprint()
        if extension.up_to_date(expected):
            print(f"    {extension.name} is up to date")
        elif "--check" in argv:
            print(f"build_native: {extension.name} is missing or stale; run scripts/build_native.py")
            stale += 1
        else:
            build(extension, expected)
            print(f"    built {extension.name}")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
