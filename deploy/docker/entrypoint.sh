#!/bin/sh
# Entrypoint of the platform image. Secrets arrive as files (Compose `secrets:`, Kubernetes secret volumes):
# for every variable <NAME>_FILE whose NAME starts with F2_, DAGSTER_ or PG, export NAME with the file's
# content (trailing newlines dropped), then run the command. Setting both NAME and NAME_FILE is an error.
set -eu

for var in $(env | sed -n 's/^\(\(F2\|DAGSTER\|PG\)[A-Z0-9_]*\)_FILE=.*$/\1/p'); do
  file="$(printenv "${var}_FILE")"
  if printenv "$var" >/dev/null 2>&1; then
    echo "f2-entrypoint: both $var and ${var}_FILE are set; set only one" >&2
    exit 64
  fi
  if [ ! -r "$file" ]; then
    echo "f2-entrypoint: ${var}_FILE points at $file, which is missing or unreadable" >&2
    exit 66
  fi
  value="$(cat "$file")"
  export "$var=$value"
  unset "${var}_FILE"
done

exec "$@"
