"""The decoder's version, worked out once per process: the package's version and the build of the native frame
decoder (a digest of the loaded extension), or `pure` when it is not built. The processor carries it in the
trace header of the records it writes (streaming/kafka/trace_header.py); replays record it with what they
stored. Two processes with the same version decode alike."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path
from typing import Final

from streaming.decoding import native

PACKAGE = "f2-platform"


def package_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def native_build() -> str:
    """`native.<first 12 hex digits of the extension file's SHA-256>`, or `pure`."""
    extension = native._EXTENSION
    path = getattr(extension, "__file__", None) if extension is not None else None
    if path is None:
        return "pure"
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except OSError:
        return "native.unknown"
    return f"native.{digest}"


DECODER_VERSION: Final[str] = f"{package_version()}+{native_build()}"
