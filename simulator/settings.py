"""The simulator's settings (prefix F2_SIMULATOR_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="F2_SIMULATOR_", extra="ignore")

    # Devices connect like real controllers: mTLS on the device listener with enrolled certificates.
    # "internal" uses the password-protected internal listener instead (tools and load tests).
    transport: str = "tls"
    enroll_url: str | None = Field(default=None, validation_alias="F2_ENROLL_URL")
    devices_dir: Path | None = None
