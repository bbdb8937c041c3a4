#!/bin/sh
# Runs once, when the database volume is first initialised (docker-entrypoint-initdb.d), as the superuser.
# Creates the platform's login roles with passwords from the Compose secrets; f2-init then applies the
# migrations as f2_owner and the grants of sql/grants.sql (and f2_enroll's, sql/grants_enrollment.sql). Also the
# Dagster instance database.
set -eu
secret() { cat "/run/secrets/$1"; }

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner_pw="$(secret f2_owner_db_password)" \
  -v processor_pw="$(secret f2_processor_db_password)" \
  -v sink_pw="$(secret f2_sink_db_password)" \
  -v grafana_pw="$(secret f2_grafana_db_password)" \
  -v enroll_pw="$(secret f2_enroll_db_password)" \
  -v dagster_pw="$(secret dagster_pg_password)" <<'SQL'
CREATE ROLE f2_owner LOGIN PASSWORD :'owner_pw';
CREATE ROLE f2_processor LOGIN PASSWORD :'processor_pw';
CREATE ROLE f2_sink LOGIN PASSWORD :'sink_pw';
CREATE ROLE f2_grafana LOGIN PASSWORD :'grafana_pw';
CREATE ROLE f2_enroll LOGIN PASSWORD :'enroll_pw';
ALTER DATABASE f2 OWNER TO f2_owner;
ALTER SCHEMA public OWNER TO f2_owner;
REVOKE ALL ON DATABASE f2 FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE f2 TO f2_processor, f2_sink, f2_grafana;
GRANT CONNECT ON DATABASE f2 TO f2_enroll;
CREATE ROLE dagster LOGIN PASSWORD :'dagster_pw';
CREATE DATABASE dagster OWNER dagster;
SQL
