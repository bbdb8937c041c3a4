"""Where each service of the local stack keeps its data, logs, pid files and secrets."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from f2_platform.settings import StackSettings


@dataclass(frozen=True)
class StackLayout:
    settings: StackSettings

    @property
    def root(self) -> Path:
        return self.settings.state_dir

    def service_dir(self, name: str) -> Path:
        return self.root / name

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def create(self) -> None:
        # Services drop to their own users (postgres, mosquitto): they must be able to traverse the root.
        for path in (self.root, self.logs, self.run):
            path.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.secrets_dir.mkdir(mode=0o700, exist_ok=True)

    def secret(self, name: str) -> str:
        """A generated secret, created on first use and kept (mode 0600) across `down`/`up`."""
        path = self.secrets_dir / name
        if not path.exists():
            self.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            value = secrets.token_urlsafe(24)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(value)
            return value
        return path.read_text().strip()
