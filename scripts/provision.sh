#!/usr/bin/env bash
# Installs everything the platform and its tests need on Debian 12, idempotently: a second run installs
# nothing. Each step says what it does; a failing step says which one and why.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="$ROOT/.cache"
mkdir -p "$CACHE"

step() { printf '\n==> %s\n' "$*"; }
ok() { printf '    %s\n' "$*"; }
fail() { printf '\nprovision: step "%s" failed: %s\n' "$CURRENT" "$*" >&2; exit 1; }
trap 'fail "command exited with status $? (see the output above)"' ERR

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# --- 1. Debian packages -------------------------------------------------------------------------------
CURRENT="Debian packages"
step "$CURRENT"
PACKAGES=(mosquitto mosquitto-clients redis-server postgresql-15 postgresql-client-15 postgresql-server-dev-15
          build-essential cmake dpkg-dev libssl-dev libkrb5-dev openssl chromium fonts-dejavu-core
          prometheus default-jre-headless maven python3-venv curl ca-certificates linux-perf)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  ok "all ${#PACKAGES[@]} packages already installed"
else
  ok "installing: ${missing[*]}"
  $SUDO apt-get update -q >"$CACHE/apt.log" 2>&1 \
    || fail "apt-get update failed (Debian's package mirror unreachable?); see $CACHE/apt.log"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" \
    >>"$CACHE/apt.log" 2>&1 || fail "apt-get install failed for: ${missing[*]}; see $CACHE/apt.log"
fi
# The stack runs private instances; Debian's packaged services must not hold the default ports.
for svc in mosquitto redis-server postgresql prometheus; do
  if command -v service >/dev/null && service "$svc" status >/dev/null 2>&1; then
    ok "note: the system's $svc service is running; the stack uses its own instance on other ports"
  fi
done

# --- 2. TimescaleDB (Apache edition) for PostgreSQL 15, from Debian 13's source package ---------------
CURRENT="TimescaleDB"
step "$CURRENT"
PGLIB="$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir)"
PGSHARE="$(/usr/lib/postgresql/15/bin/pg_config --sharedir)"
installed_ts="$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$PGSHARE/extension/timescaledb.control" 2>/dev/null || true)"
if [ -n "$installed_ts" ] && [ -f "$PGLIB/timescaledb-$installed_ts.so" ]; then
  ok "timescaledb $installed_ts already built into $PGLIB"
else
  APTDIR="$CACHE/timescaledb/apt"
  SRCDIR="$CACHE/timescaledb/src"
  mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$SRCDIR"
  # A private apt configuration: trixie's deb-src line never enters the system's sources.
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    > "$APTDIR/sources.list"
  APTOPTS=(-o "Dir::Etc::SourceList=$APTDIR/sources.list" -o "Dir::Etc::SourceParts=-"
           -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache" -o "APT::Sandbox::User=root")
  ok "fetching the timescaledb source package from Debian 13 (trixie)"
  apt-get "${APTOPTS[@]}" -q update >/dev/null || fail "could not read trixie's source index"
  rm -rf "$SRCDIR" && mkdir -p "$SRCDIR"
  (cd "$SRCDIR" && apt-get "${APTOPTS[@]}" -q source --download-only timescaledb >/dev/null) \
    || fail "apt-get source timescaledb failed (Debian's mirror unreachable?)"
  (cd "$SRCDIR" && dpkg-source -x --no-check ./timescaledb_*.dsc tree >/dev/null) \
    || fail "unpacking the source package failed"
  ok "building against PostgreSQL 15 (Apache-licensed edition, as Debian builds it)"
  cmake -S "$SRCDIR/tree" -B "$SRCDIR/tree/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPG_CONFIG=/usr/lib/postgresql/15/bin/pg_config -DAPACHE_ONLY=ON -DSEND_TELEMETRY_DEFAULT=OFF \
    -DUSE_TELEMETRY=OFF -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF >"$SRCDIR/cmake.log" 2>&1 \
    || fail "cmake failed; see $SRCDIR/cmake.log"
  make -C "$SRCDIR/tree/build" -j"$(nproc)" >"$SRCDIR/make.log" 2>&1 || fail "build failed; see $SRCDIR/make.log"
  $SUDO make -C "$SRCDIR/tree/build" install >"$SRCDIR/install.log" 2>&1 || fail "install failed; see $SRCDIR/install.log"
  ok "installed timescaledb $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$PGSHARE/extension/timescaledb.control")"
fi

# --- 3. Apache Kafka broker jars from Maven Central ---------------------------------------------------
CURRENT="Kafka broker"
step "$CURRENT"
KLIBS="$CACHE/kafka/libs"
if compgen -G "$KLIBS/kafka_2.13-*.jar" >/dev/null && [ -f "$KLIBS/.complete" ] \
   && cmp -s "$ROOT/scripts/kafka/pom.xml" "$KLIBS/.complete"; then
  ok "Kafka jars already in $KLIBS"
else
  ok "resolving the Kafka broker and its dependencies with mvn"
  rm -rf "$KLIBS"
  mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$KLIBS" >"$CACHE/kafka-mvn.log" 2>&1 \
    || fail "mvn could not resolve the broker (Maven Central unreachable?); see $CACHE/kafka-mvn.log"
  cp "$ROOT/scripts/kafka/pom.xml" "$KLIBS/.complete"
  ok "$(ls "$KLIBS" | wc -l) jars in $KLIBS"
fi

# --- 4. Python environment with uv --------------------------------------------------------------------
CURRENT="Python environment"
step "$CURRENT"
TOOLS="$CACHE/tools"
if [ ! -x "$TOOLS/bin/uv" ]; then
  ok "installing uv into $TOOLS"
  python3 -m venv "$TOOLS" || fail "python3 -m venv failed (python3-venv missing?)"
  "$TOOLS/bin/pip" install -q uv || fail "pip could not install uv (PyPI unreachable?)"
fi
export UV_PYTHON_DOWNLOADS=never
# The project is installed editable by its build backend (setup.py), which compiles the processor's frame
# decoder and the sink's COPY formatter (C) next to their sources; uv reinstalls it when a .c file changed.
"$TOOLS/bin/uv" sync --frozen --quiet \
  || fail "uv sync failed (PyPI unreachable, uv.lock out of date: run uv lock, or a C extension did not compile: see above)"
ok "virtual environment .venv matches uv.lock"
NATIVE_IMPORT="import streaming.decoding._frame_records, streaming.sink._copy_rows"
if ! "$ROOT/.venv/bin/python" -c "$NATIVE_IMPORT" 2>/dev/null; then
  # A library deleted or built for another interpreter: uv sees no changed source, so rebuild explicitly.
  ok "the native hot paths do not import: rebuilding them"
  "$TOOLS/bin/uv" sync --frozen --quiet --reinstall-package f2-platform \
    || fail "rebuilding the project (its C extensions) failed; see above"
  "$ROOT/.venv/bin/python" -c "$NATIVE_IMPORT" || fail "the C extensions were built but do not import (see above)"
fi
ok "native hot paths built: streaming/decoding/_frame_records, streaming/sink/_copy_rows"

# --- 5. Validation tools outside the project venv (docker-compose from PyPI, promtool, hadolint) -------
CURRENT="validation tools"
step "$CURRENT"
"$ROOT/scripts/provision_tools.sh" || fail "scripts/provision_tools.sh failed"

CURRENT="done"
step "provisioning complete"
