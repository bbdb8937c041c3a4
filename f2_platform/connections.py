"""Connection settings as an `f2` command sees them: the environment first, then, on a machine where
`f2 stack up` set up a local stack, that stack's endpoints for what the environment leaves unset.

Only the CLI calls this (the daemons read their environment alone, and the CLI passes the resolved settings
to them): a production container, which has no local stack, gets exactly its environment.
"""

from __future__ import annotations

from f2_platform.settings import StackSettings
from streaming.settings import ConnectionSettings, CredentialSettings


def local_stack_present(settings: StackSettings) -> bool:
    """A local stack was set up here: its state folder holds the secrets `f2 stack up` generated."""
    from f2_platform.stack.layout import StackLayout

    return StackLayout(settings).secrets_dir.is_dir()


def resolve_connections() -> ConnectionSettings:
    explicit = ConnectionSettings()
    stack_settings = StackSettings()
    if not local_stack_present(stack_settings):
        return explicit
    from f2_platform.stack.manager import Stack

    local = Stack(stack_settings).env_settings()
    overrides = {name: getattr(explicit, name) for name in explicit.model_fields_set}
    return local.model_copy(update=overrides)


def resolve_credentials() -> CredentialSettings:
    """The credential key settings (F2_CREDENTIAL_*): the environment first, then the local stack's key for
    what it leaves unset."""
    explicit = CredentialSettings()
    stack_settings = StackSettings()
    if not local_stack_present(stack_settings):
        return explicit
    from f2_platform.stack.manager import Stack

    local = Stack(stack_settings).credential_settings()
    overrides = {name: getattr(explicit, name) for name in explicit.model_fields_set}
    return local.model_copy(update=overrides)
