"""Settings of the enrollment service (`f2 certs serve`), environment prefix F2_ENROLL_.

The registry DSN is the platform's F2_REGISTRY_DSN, handed over by the main CLI (`ctx.obj["registry_dsn"]`);
F2_ENROLL_REGISTRY_DSN overrides it for the service with a least-privilege role (SELECT on
"VtDevice".devices; SELECT, INSERT, UPDATE on "VtDevice".f2_enrollments). Rates are requests per
second; a bucket holds at most `*_burst` requests.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from certs.authority import DEVICE_DAYS
from certs.registry_schema import DEFAULT_SCHEMA, validate_schema_name


class EnrollSettings(BaseSettings):
    """F2_ENROLL_HOST, F2_ENROLL_PORT, F2_ENROLL_PER_IP_RATE, ... (see the field names)."""

    model_config = SettingsConfigDict(env_prefix="F2_ENROLL_", extra="ignore", populate_by_name=True)

    # Loopback by default: a deployment that enrolls devices over the network sets 0.0.0.0 (or an address).
    host: str = "127.0.0.1"
    # 10000 above the usual 8443, like the local stack's other ports (StackSettings.enroll_port).
    port: int = Field(default=18443, ge=0, le=65535)
    # Each client IP: `per_ip_burst` requests at once, then `per_ip_rate` per second.
    per_ip_rate: float = Field(default=1.0, gt=0)
    per_ip_burst: int = Field(default=10, ge=1)
    # Every client together: caps guessing from many addresses (and the load on the registry and CA).
    global_rate: float = Field(default=10.0, gt=0)
    global_burst: int = Field(default=50, ge=1)
    # Client IPs whose buckets are remembered; beyond it, full buckets are forgotten first.
    max_tracked_clients: int = Field(default=10000, ge=1)
    # Connections served at once; more are closed at once without an answer.
    max_connections: int = Field(default=64, ge=1)
    # Seconds a client gets for the TLS handshake and for each read of its request.
    request_timeout_s: float = Field(default=10.0, gt=0)
    # Validity of the certificates issued to devices.
    device_days: int = Field(default=DEVICE_DAYS, ge=1)
    # TLS certificate and key of the endpoint. Unset: the CA's server.crt/server.key (the broker's),
    # issued for the listen host when missing. Set both to use a certificate with the public name.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # The service's own registry role (see above); unset: the platform's registry DSN.
    registry_dsn: str | None = None
    # Seconds a registry connection attempt may take before the request is answered 503.
    registry_timeout_s: int = Field(default=5, ge=1)
    # The registry's schema: the platform's setting F2_REGISTRY_SCHEMA, read here because certs stands apart.
    registry_schema: str = Field(default=DEFAULT_SCHEMA, validation_alias="F2_REGISTRY_SCHEMA")

    @field_validator("registry_schema")
    @classmethod
    def _schema_name(cls, value: str) -> str:
        return validate_schema_name(value)

    @model_validator(mode="after")
    def _tls_pair(self) -> EnrollSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both F2_ENROLL_TLS_CERT and F2_ENROLL_TLS_KEY, or neither")
        return self


__all__ = ["EnrollSettings"]
