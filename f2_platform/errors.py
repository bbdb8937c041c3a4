"""Exception root of the f2_platform package (stack, database, registry, CLI, Dagster code)."""

from __future__ import annotations


class F2Error(Exception):
    """Root of every error f2_platform raises on purpose; the CLI prints its message and exits non-zero."""


class ProvisioningError(F2Error):
    """Something the local stack needs is not installed or not usable."""


class StackError(F2Error):
    """A service of the local stack could not be started, checked or stopped."""


class PortBusyError(StackError):
    """A port the stack wants is taken by another process."""


class MigrationError(F2Error):
    """A schema migration failed; its transaction was rolled back."""


class RegistryError(F2Error):
    """The device registry is missing something the platform needs."""
