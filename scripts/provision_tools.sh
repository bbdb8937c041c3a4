#!/usr/bin/env bash
# Installs the deployment-validation tools that cannot live in the project's virtual environment, idempotently:
# a second run installs nothing. Called by scripts/provision.sh after the Debian packages and `uv sync`.
#
#   - docker-compose 1.29.2 (PyPI) in its own venv under .cache/compose: `docker-compose config` validates
#     deploy/compose/compose.yaml without a container engine. It pins PyYAML<6 and jsonschema<4, which clash
#     with the project's own dependencies, hence the separate venv. PyYAML 5.4.1 has no wheel for Python 3.11
#     and its sdist only builds with Cython<3, so it is built first without build isolation.
#   - promtool and prometheus come from Debian's `prometheus` package (scripts/provision.sh installs it);
#     hadolint and kubernetes-validate come from the project's venv (uv sync). This script only checks them.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="$ROOT/.cache"
COMPOSE_VENV="$CACHE/compose/venv"
COMPOSE_VERSION="1.29.2"
LOG="$CACHE/compose/install.log"

step() { printf '\n==> %s\n' "$*"; }
ok() { printf '    %s\n' "$*"; }
fail() { printf '\nprovision_tools: step "%s" failed: %s\n' "$CURRENT" "$*" >&2; exit 1; }

# --- docker-compose (PyPI) in its own venv ---------------------------------------------------------------
CURRENT="docker-compose $COMPOSE_VERSION"
step "$CURRENT (validates deploy/compose without a container engine)"
if [ "$("$COMPOSE_VENV/bin/docker-compose" version --short 2>/dev/null || true)" = "$COMPOSE_VERSION" ]; then
  ok "already installed in $COMPOSE_VENV"
else
  mkdir -p "$CACHE/compose"
  rm -rf "$COMPOSE_VENV"
  : >"$LOG"
  ok "creating $COMPOSE_VENV"
  python3 -m venv "$COMPOSE_VENV" >>"$LOG" 2>&1 || fail "python3 -m venv failed (python3-venv missing?); see $LOG"
  PIP=("$COMPOSE_VENV/bin/pip" install -q --disable-pip-version-check)
  ok "building PyYAML 5.4.1 (docker-compose needs PyYAML<6; its sdist needs Cython<3)"
  "${PIP[@]}" "cython<3" wheel "setuptools<70" >>"$LOG" 2>&1 \
    || fail "pip could not install Cython<3 (PyPI unreachable?); see $LOG"
  "${PIP[@]}" --no-build-isolation "pyyaml==5.4.1" >>"$LOG" 2>&1 \
    || fail "building PyYAML 5.4.1 failed (build-essential missing?); see $LOG"
  ok "installing docker-compose $COMPOSE_VERSION"
  "${PIP[@]}" "docker-compose==$COMPOSE_VERSION" >>"$LOG" 2>&1 \
    || fail "pip could not install docker-compose (PyPI unreachable?); see $LOG"
  "$COMPOSE_VENV/bin/docker-compose" version >>"$LOG" 2>&1 \
    || fail "docker-compose does not start; see $LOG"
  ok "installed: $("$COMPOSE_VENV/bin/docker-compose" version --short 2>/dev/null)"
fi

# --- tools that come from elsewhere: only checked -----------------------------------------------------------
CURRENT="validation tools present"
step "$CURRENT"
for tool in /usr/bin/promtool /usr/bin/prometheus; do
  [ -x "$tool" ] || fail "$tool is missing: install Debian's prometheus package (scripts/provision.sh does)"
done
ok "promtool: $(/usr/bin/promtool --version 2>&1 | head -1)"
for tool in hadolint kubernetes-validate; do
  [ -x "$ROOT/.venv/bin/$tool" ] || fail "$tool is missing from .venv: run uv sync (scripts/provision.sh does)"
done
ok "hadolint: $("$ROOT/.venv/bin/hadolint" --version)"
ok "kubernetes-validate: $("$ROOT/.venv/bin/kubernetes-validate" --version)"
