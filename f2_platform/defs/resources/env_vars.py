"""Resource configuration that names its environment variable (`dg.EnvVar`), so the Dagster UI shows which
variable a resource reads (F2_TIMESERIES_DSN, F2_KAFKA_SASL_PASSWORD...), never the value.

The typed settings classes stay the readers of the environment: they say which variables are set.
"""

from __future__ import annotations

import dagster as dg
from pydantic_settings import BaseSettings

from f2_platform.environment import Environment, get_environment


def variable_name(settings_class: type[BaseSettings], field: str) -> str:
    """The environment variable `settings_class` reads `field` from."""
    alias = settings_class.model_fields[field].validation_alias
    if isinstance(alias, str):
        return alias
    return f"{settings_class.model_config.get('env_prefix', '')}{field}".upper()


def env_var(
    settings: BaseSettings, field: str, *, required: bool = False, environment: Environment | None = None
) -> dg.EnvVar | None:
    """`dg.EnvVar` of `field`'s variable when the environment sets it, or when it is `required` outside `local`
    (unset there, every run that uses the resource fails naming it). None otherwise: the resource reads its
    settings when it runs, which in `local` fall back to the local stack (f2_platform/environment.py)."""
    outside_local = (environment or get_environment()) != "local"
    if field in settings.model_fields_set or (required and outside_local):
        return dg.EnvVar(variable_name(type(settings), field))
    return None
