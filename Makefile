# The README's two commands: `make demo` runs the platform, `make test` runs the tests.
# Both provision first (idempotent: a second run installs nothing).
SHELL := /bin/bash
UV := .cache/tools/bin/uv
RUN := $(UV) run --frozen
PYTEST_ARGS ?=
# How much past traffic `make demo` sends through the pipeline and materializes first (once per state folder).
DEMO_HISTORY ?= 24h

.PHONY: provision demo test lint typecheck unit stop clean screenshots

provision:
	@scripts/provision.sh

demo: provision
	@$(RUN) f2 demo up --history $(DEMO_HISTORY)

test: provision
	@$(RUN) pytest $(PYTEST_ARGS)

unit: provision
	@$(RUN) pytest tests/unit $(PYTEST_ARGS)

lint: provision
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

typecheck: provision
	@$(RUN) mypy f2_platform streaming certs

stop:
	@$(RUN) f2 demo down

# The pictures in README.md and docs/ (docs/images/*.png), from the running demo (make demo first).
screenshots:
	@$(RUN) python scripts/screenshots.py
