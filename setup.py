"""The daemons' native hot paths, built by the build backend; everything else about the project is in
pyproject.toml.

Two C extensions: the processor's frame decoder (streaming/decoding/_frame_records.c) and the sink's COPY
formatter (streaming/sink/_copy_rows.c). `uv build` compiles them into the wheel; `uv sync` (the editable
install `make provision` runs) compiles them next to their sources, and again whenever a `.c` file changed
(`tool.uv.cache-keys`). Without them each daemon still works, on its pure-Python path, and says so.
"""

from __future__ import annotations

import os
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The interpreter's own CFLAGS come first on the command line, so these win (-O2 over its -O3). Warnings are
# errors: the C compiles clean or not at all. No strict aliasing: the decoders read bytes through wider types.
FLAGS = ["-O2", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing", "-std=c11"]
MODULES = ("streaming.decoding._frame_records", "streaming.sink._copy_rows")


class BuildExtReplacingWhole(build_ext):
    """An in-place build (the editable install) puts each library in place by renaming a complete new file over
    the old one: a running daemon keeps the library it mapped, and one importing meanwhile never reads half a
    file (a plain copy would rewrite the mapped file under the first and truncate it under the second)."""

    # The base class overloads str and bytes paths; build_ext copies str paths only.
    def copy_file(self, infile: str, outfile: str, *args: Any, **kwargs: Any) -> tuple[str, bool]:  # type: ignore[override]
        partial = f"{outfile}.partial"
        _, copied = super().copy_file(infile, partial, *args, **kwargs)
        if os.path.exists(partial):  # not on a dry run
            os.replace(partial, outfile)
        return outfile, copied


setup(
    ext_modules=[Extension(module, [module.replace(".", "/") + ".c"], extra_compile_args=FLAGS) for module in MODULES],
    cmdclass={"build_ext": BuildExtReplacingWhole},
)
