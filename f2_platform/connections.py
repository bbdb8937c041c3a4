"""Connection settings as a command sees them: the environment first, the local stack for what it leaves unset."""

from __future__ import annotations

from f2_platform.settings import ConnectionSettings, StackSettings


def resolve_connections() -> ConnectionSettings:
    explicit = ConnectionSettings()
    from f2_platform.stack.manager import Stack

    stack_settings = StackSettings()
    if not stack_settings.state_dir.exists():
        return explicit
    local = Stack(stack_settings).env_settings()
    overrides = {name: getattr(explicit, name) for name in explicit.model_fields_set}
    return local.model_copy(update=overrides)
