"""Files of the pki dir: atomic writes with exact modes, the index of issued certificates, a lock.

Nothing here knows about X.509; `authority.py` decides what to write, this module decides how.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from certs.errors import IndexCorruptError, PermissionSetupError

# "service": a platform service's client certificate (the bridge's, on the broker's device listener).
CertKind = Literal["device", "server", "service"]
CERT_KINDS: Final[tuple[str, ...]] = ("device", "server", "service")
INDEX_VERSION: Final = 1

PRIVATE_MODE: Final = 0o600  # private keys and the index
BROKER_KEY_MODE: Final = 0o640  # server.key: the broker's group reads it after dropping root
PUBLIC_MODE: Final = 0o644  # certificates and the CRL
DIR_MODE: Final = 0o755  # the broker must traverse the pki dir to reach its files
PRIVATE_DIR_MODE: Final = 0o700


@dataclass(frozen=True)
class IndexEntry:
    """One certificate the CA signed."""

    serial: str  # lowercase hex, no prefix
    cn: str
    kind: CertKind
    not_before: datetime
    not_after: datetime
    revoked: bool = False
    revoked_at: datetime | None = None
    # "issued" by this platform, or "imported": issued by an adopted CA before (f2 certs import-issued).
    origin: str = "issued"

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "serial": self.serial,
            "cn": self.cn,
            "kind": self.kind,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "revoked": self.revoked,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> IndexEntry:
        kind = raw["kind"]
        if kind not in CERT_KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        revoked_at = raw.get("revoked_at")
        return cls(
            serial=str(raw["serial"]),
            cn=str(raw["cn"]),
            kind=kind,
            not_before=_aware(raw["not_before"]),
            not_after=_aware(raw["not_after"]),
            revoked=bool(raw["revoked"]),
            revoked_at=_aware(revoked_at) if revoked_at else None,
            origin=str(raw.get("origin", "issued")),
        )

    def revoke(self, when: datetime) -> IndexEntry:
        return replace(self, revoked=True, revoked_at=when)


@dataclass
class CertIndex:
    """Content of index.json: every certificate issued, and the state of the CRL sequence."""

    entries: list[IndexEntry] = field(default_factory=list)
    crl_number: int = 0
    # OpenSSL keeps the CRL it loaded first unless a newer one has a strictly later lastUpdate.
    crl_last_update: datetime | None = None
    # Serials an adopted CA had revoked (its CRL, given to import-ca), with when: every CRL keeps them, so a
    # certificate revoked before the adoption stays refused even though it was never recorded here.
    adopted_revocations: dict[str, datetime] = field(default_factory=dict)

    def serials(self) -> set[str]:
        return {entry.serial for entry in self.entries}

    def to_json(self) -> dict[str, Any]:
        return {
            "version": INDEX_VERSION,
            "crl_number": self.crl_number,
            "crl_last_update": self.crl_last_update.isoformat() if self.crl_last_update else None,
            "certs": [entry.to_json() for entry in self.entries],
            "adopted_revocations": {serial: at.isoformat() for serial, at in sorted(self.adopted_revocations.items())},
        }


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return value


def load_index(path: Path) -> CertIndex:
    """Read index.json; a missing file is an empty index."""
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return CertIndex()
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(
            f"{path} cannot be read ({exc}); restore it from a backup. Every certificate the CA "
            f"signed is also kept as issued/<serial>.pem next to it."
        ) from exc
    try:
        if raw.get("version") != INDEX_VERSION:
            raise ValueError(f"version {raw.get('version')!r}, expected {INDEX_VERSION}")
        last = raw.get("crl_last_update")
        return CertIndex(
            entries=[IndexEntry.from_json(item) for item in raw["certs"]],
            crl_number=int(raw["crl_number"]),
            crl_last_update=_aware(last) if last else None,
            adopted_revocations={str(serial): _aware(at) for serial, at in raw.get("adopted_revocations", {}).items()},
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise IndexCorruptError(
            f"{path} is not a valid certificate index ({type(exc).__name__}: {exc}); restore it from a "
            f"backup. Every certificate the CA signed is also kept as issued/<serial>.pem next to it."
        ) from exc


def save_index(path: Path, index: CertIndex) -> None:
    data = json.dumps(index.to_json(), indent=2, sort_keys=True).encode() + b"\n"
    atomic_write(path, data, PRIVATE_MODE)


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` with exactly `mode`; readers see the old file or the new one, never half.

    The temporary file is created with `mode` already applied, so a private key is never readable
    by others, not even for an instant.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path, mode: int) -> None:
    """Create `path` with `mode` if missing; an existing directory keeps the mode its owner gave it."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)


@contextlib.contextmanager
def locked(pki_dir: Path) -> Iterator[None]:
    """Serialise changes to the pki dir between processes (CLI, Dagster, enrolment)."""
    ensure_dir(pki_dir, DIR_MODE)
    fd = os.open(pki_dir / ".lock", os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def grant_read(path: Path, username: str) -> bool:
    """Give the primary group of `username` read access to `path`.

    Returns False, changing nothing, when the user does not exist (no broker installed here).
    """
    try:
        account = pwd.getpwnam(username)
    except KeyError:
        return False
    try:
        os.chown(path, -1, account.pw_gid)
        os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | stat.S_IRGRP)
    except PermissionError as exc:
        raise PermissionSetupError(
            f"cannot give the group of user {username!r} (gid {account.pw_gid}) read access to {path}: "
            f"{exc.strerror}. Run this as root, or run `chgrp {account.pw_gid} {path} && chmod g+r {path}` "
            f"as root; if your broker runs as yourself, do not ask for a broker user."
        ) from exc
    return True
