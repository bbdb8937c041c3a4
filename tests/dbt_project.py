"""The dbt manifest the code location builds its dbt assets from, prepared once per test session as the image
build prepares it (`dagster-dbt project prepare-and-package`): the tests then load the code location as a
deployment does, and see the dbt project as it is in the checkout."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path


@functools.cache
def prepare_dbt_project() -> None:
    from f2_platform.defs.analytics.project import dbt_project

    # dagster-dbt runs `dbt parse` by name: this interpreter's dbt, even from a virtualenv never activated.
    previous = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), previous])
    try:
        dbt_project.preparer.prepare(dbt_project)
    finally:
        os.environ["PATH"] = previous
