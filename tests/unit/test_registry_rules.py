"""The registry's rules, constraints, reference layout and link as data: pure, no database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from f2_platform.db import reference_registry as ref
from f2_platform.db.migrations import Migration, ledger_target
from f2_platform.db.registry_check import CheckReport, Finding, Violation, structure_findings
from f2_platform.db.registry_constraints import CONSTRAINTS, ENCODINGS
from f2_platform.db.registry_link import LinkTarget, create_options, options_clause, table_statements
from f2_platform.db.registry_rules import RULES, RULES_BY_NAME
from streaming.registry_schema import in_schema, quoted_schema, schema_name_problem, validate_schema_name

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS_SQL = REPO / "sql" / "registry" / "0006_platform_constraints.sql"
CALL = re.compile(r"SELECT pg_temp\.f2_(unique|primary_key|constraint)\('(\w+)', '(\w+)', \$\$(.*?)\$\$\);")
KINDS = {"unique": "unique", "primary_key": "primary-key"}


# ------------------------------------------------------------------------------------------ schema name


@pytest.mark.parametrize("name", ["VtDevice", "vtdevice", "Registry_2", "_x", "a$b", "x" * 63])
def test_plain_identifiers_are_schema_names(name: str) -> None:
    assert schema_name_problem(name) is None
    assert quoted_schema(name) == f'"{name}"'


@pytest.mark.parametrize(
    "name",
    ['VtDevice"; DROP TABLE x; --', "Vt Device", "1abc", "", "x" * 64, "pg_catalog", "Ü", "a.b", "a'b", 'a"b'],
)
def test_anything_else_is_refused_with_the_setting_named(name: str) -> None:
    with pytest.raises(ValueError, match="F2_REGISTRY_SCHEMA"):
        validate_schema_name(name)


def test_in_schema_replaces_the_quoted_default_only() -> None:
    statement = """SELECT 'VtDevice', "VtDevice".devices.x FROM "VtDevice".devices"""
    assert in_schema(statement, "VtDevice") == statement
    assert in_schema(statement, "Fleet") == """SELECT 'VtDevice', "Fleet".devices.x FROM "Fleet".devices"""
    with pytest.raises(ValueError):
        in_schema(statement, 'x" ; DROP')


def test_connection_settings_refuse_a_bad_schema_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from streaming.settings import ConnectionSettings

    monkeypatch.setenv("F2_REGISTRY_SCHEMA", "Fleet_A")
    assert ConnectionSettings().registry_schema == "Fleet_A"
    monkeypatch.setenv("F2_REGISTRY_SCHEMA", 'Fleet"; --')
    with pytest.raises(ValidationError, match="not a plain identifier"):
        ConnectionSettings()


def test_the_enrollment_service_reads_the_same_setting_by_the_same_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from certs.enrollment_store import Statements
    from certs.settings import EnrollSettings

    monkeypatch.setenv("F2_REGISTRY_SCHEMA", "Fleet_A")
    assert EnrollSettings().registry_schema == "Fleet_A"
    statements = Statements.of("Fleet_A")
    assert all('"Fleet_A".' in s and "VtDevice" not in s for s in vars(statements).values())
    monkeypatch.setenv("F2_REGISTRY_SCHEMA", "Fleet A")
    with pytest.raises(ValidationError, match="F2_REGISTRY_SCHEMA"):
        EnrollSettings()


# ------------------------------------------------------------------------------------------ migrations


def test_a_replaced_migration_names_the_checksum_it_replaces() -> None:
    migration = Migration("registry", 2, "integrity", REPO / "sql" / "registry" / "0002_integrity.sql")
    assert migration.replaces == {"61d7a642c36938066efa4d6ecfa9cb2b35f3ade23584fef42b44ff5e21bb195c"}
    assert migration.checksum not in migration.replaces
    # The replaced form is the file the tests keep as version 1.
    import hashlib

    first = REPO / "tests" / "integration" / "registry_v1" / "0002_integrity.sql"
    assert hashlib.sha256(first.read_bytes()).hexdigest() in migration.replaces


def test_registry_migrations_are_rendered_in_the_schema_and_keep_their_own_ledger() -> None:
    migration = Migration("registry", 6, "platform_constraints", CONSTRAINTS_SQL)
    rendered = migration.rendered("Fleet_A")
    assert '"VtDevice"' not in rendered and rendered.count('"Fleet_A"') == migration.sql.count('"VtDevice"')
    assert ledger_target("registry") == "registry" and ledger_target("registry", "Fleet_A") == "registry:Fleet_A"
    assert ledger_target("timeseries", "Fleet_A") == "timeseries"


def test_the_constraint_catalogue_is_what_migration_0006_adds() -> None:
    found = {
        (name, table, KINDS.get(kind, "check-or-fk"), spec)
        for kind, table, name, spec in CALL.findall(CONSTRAINTS_SQL.read_text())
    }
    listed = {
        (c.name, c.table, c.kind if c.kind in ("unique", "primary-key") else "check-or-fk", c.spec) for c in CONSTRAINTS
    }
    assert found == listed
    kinds = {c.name: c.kind for c in CONSTRAINTS}
    assert all(
        kinds[n] == ("foreign-key" if "FOREIGN KEY" in s else "check") for n, _, k, s in found if k == "check-or-fk"
    )


def test_every_constraint_has_the_rule_that_lists_its_rows() -> None:
    for c in CONSTRAINTS:
        rule = RULES_BY_NAME[c.rule]
        assert rule.table == c.table, c.name


def test_statements_of_a_constraint() -> None:
    by_name = {c.name: c for c in CONSTRAINTS}
    assert by_name["devices_macaddress_key"].add_sql("Fleet") == (
        'CREATE UNIQUE INDEX "devices_macaddress_key" ON "Fleet".devices (macaddress)'
    )
    fk = by_name["pins_deviceid_fkey"]
    assert fk.add_sql("Fleet") == (
        'ALTER TABLE "Fleet".pins ADD CONSTRAINT "pins_deviceid_fkey" FOREIGN KEY (deviceid) REFERENCES '
        '"Fleet".devices (deviceid) ON DELETE CASCADE NOT VALID'
    )
    assert fk.validate_sql("Fleet") == 'ALTER TABLE "Fleet".pins VALIDATE CONSTRAINT "pins_deviceid_fkey"'
    assert by_name["datapoints_pkey"].add_sql("VtDevice").endswith("PRIMARY KEY (datapointid)")


def test_foreign_keys_the_reference_breaks_by_design_are_not_platform_constraints() -> None:
    foreign = sorted((c.table, c.spec.split(")")[0] + ")") for c in CONSTRAINTS if c.kind == "foreign-key")
    # No FK on datapoints.datapointiconid, devicetemplates.devicetypeid or devices.devicetemplateid.
    assert foreign == [
        ("connectors", "FOREIGN KEY (controllerid)"),
        ("datapoints", "FOREIGN KEY (devicetemplateid)"),
        ("pins", "FOREIGN KEY (connectorid)"),
        ("pins", "FOREIGN KEY (deviceid)"),
    ]


# ------------------------------------------------------------------------------------------------ rules


def test_rule_queries_name_only_the_configured_schema() -> None:
    for rule in RULES:
        text = rule.sql("Fleet_A")
        assert "VtDevice" not in text and '"Fleet_A".' in text, rule.name
        assert rule.tables <= set(ref.REFERENCE_TABLES), rule.name


@pytest.mark.parametrize(
    ("mac", "fix"),
    [
        ("AA:BB:CC:DD:EE:05", "UPDATE \"Fleet\".devices SET macaddress = 'aabbccddee05' WHERE deviceid = 7;"),
        ("aa-bb-cc-dd-ee-05", "UPDATE \"Fleet\".devices SET macaddress = 'aabbccddee05' WHERE deviceid = 7;"),
        ("", 'UPDATE "Fleet".devices SET macaddress = NULL WHERE deviceid = 7;  -- not a controller'),
    ],
)
def test_a_mac_fix_normalises_what_can_be(mac: str, fix: str) -> None:
    assert RULES_BY_NAME["controller-mac-format"].fix_sql((7, mac), "Fleet") == fix


def test_a_mac_that_cannot_be_normalised_gets_a_template_and_its_value_is_never_spliced() -> None:
    rule = RULES_BY_NAME["controller-mac-format"]
    fix = rule.fix_sql((7, "x'; DROP TABLE devices; --"), "VtDevice")
    assert "DROP" not in fix and "'<mac>'" in fix
    assert "x'; DROP" in rule.problem((7, "x'; DROP"))  # in the problem, as text for the reader


@pytest.mark.parametrize(
    ("encoding", "length", "fixed"),
    [("int16", 2, "'Int16'"), (" float32 ", 4, "'Float32'"), ("", 2, "'Int16'"), ("", 0, "'Bool'"), ("", 4, "'Int32'")],
)
def test_an_encoding_fix_takes_the_encoding_meant_or_one_that_fits_the_length(
    encoding: str, length: int, fixed: str
) -> None:
    fix = RULES_BY_NAME["datapoint-encoding"].fix_sql((12, encoding, length, "Humidity", 3), "VtDevice")
    wanted = " ".join(['UPDATE "VtDevice".datapoints SET dataencoding =', fixed, "WHERE datapointid = 12;"])
    assert fix.splitlines()[-1] == wanted


def test_the_encoding_rule_lists_every_valid_encoding() -> None:
    assert set(ENCODINGS) <= set(re.findall(r"'(\w+)'", RULES_BY_NAME["datapoint-encoding"].query))


def test_a_missing_template_names_the_id() -> None:
    rule = RULES_BY_NAME["wired-device-template-exists"]
    assert rule.problem((4, "Garage Env", 999)) == "wired device 'Garage Env' has template id 999, which does not exist"
    assert "no template (NULL)" in rule.problem((4, "Garage Env", None))


# ---------------------------------------------------------------------------------------- structure


def reference_columns() -> dict[str, dict[str, ref.FoundColumn]]:
    return {
        t: {c.name: ref.FoundColumn(c.type, c.not_null, c.default, c.identity) for c in cols}
        for t, cols in ref.REFERENCE_TABLES.items()
    }


def test_the_reference_layout_differs_from_itself_in_nothing() -> None:
    assert ref.differences(reference_columns()) == []


def test_the_reference_layout_can_run_and_only_the_platform_columns_are_noted() -> None:
    findings = structure_findings(reference_columns(), "VtDevice")
    assert not [f for f in findings if f.severity == "cannot-run"]
    assert {f.subject for f in findings} == {
        "devicetemplates.frame_check",
        "devicetemplates.expected_interval_s",
        "datapoints.min_value",
        "datapoints.max_value",
    }


def test_a_column_the_platform_reads_missing_or_unreadable_means_it_cannot_run() -> None:
    columns = reference_columns()
    del columns["devices"]["macaddress"]
    columns["datapoints"]["offset"] = ref.FoundColumn("text", True, None, False)
    fatal = {f.subject: f.message for f in structure_findings(columns, "VtDevice") if f.severity == "cannot-run"}
    assert set(fatal) == {"devices.macaddress", "datapoints.offset"}
    assert "is text" in fatal["datapoints.offset"]


def test_another_definition_of_an_unread_column_is_a_note() -> None:
    columns = reference_columns()
    columns["datapoints"]["realtimechart"] = ref.FoundColumn("boolean", True, "false", False)
    notes = [f for f in structure_findings(columns, "VtDevice") if f.subject == "datapoints.realtimechart"]
    assert len(notes) == 1 and notes[0].severity == "note"
    assert "boolean NOT NULL DEFAULT false" in notes[0].message and "text NOT NULL" in notes[0].message


def test_exit_codes_and_json() -> None:
    report = CheckReport("VtDevice", "h:1/db", None)
    assert report.exit_code == 0
    report.violations.append(Violation("pin-unique", "pins", "pinid", 4, "two", "DELETE ..."))
    report.findings.append(Finding("registry", "note", "x", "y"))
    assert report.exit_code == 1
    data = report.to_json()
    assert data["rules"] == [
        {
            "rule": "pin-unique",
            "table": "pins",
            "key": "pinid",
            "effect": "",
            "rows": [{"id": 4, "problem": "two", "fix": "DELETE ..."}],
        }
    ]
    report.findings.append(Finding("timeseries", "cannot-run", "decoded_data", "z"))
    assert report.exit_code == 2 and report.to_json()["cannot_run"][0]["subject"] == "decoded_data"
    assert report.text()[-1].endswith("(exit 2)")


# ----------------------------------------------------------------------------------------------- link


def test_the_link_target_is_the_dsn_without_its_credentials_in_the_server() -> None:
    target = LinkTarget.from_dsn("postgresql://reader:s%40cret@reg.example:6432/registry?sslmode=require")
    assert target.options == {"host": "reg.example", "port": "6432", "dbname": "registry", "sslmode": "require"}
    assert (target.user, target.password) == ("reader", "s@cret")
    assert target.where() == "reg.example:6432/registry"


def test_server_options_when_created() -> None:
    assert create_options({"host": "a", "port": "1"}).as_string(None) == """OPTIONS ("host" 'a', "port" '1')"""
    assert create_options({}).as_string(None) == ""


def test_server_options_change_only_what_differs() -> None:
    assert options_clause({"host": "a", "port": "1"}, {"host": "a", "port": "1"}) is None
    clause = options_clause({"host": "a", "sslmode": "x"}, {"host": "b", "port": "2"})
    assert clause is not None
    assert clause.as_string(None) == """OPTIONS (SET "host" 'b', ADD "port" '2', DROP "sslmode")"""


def test_foreign_tables_are_created_then_follow_the_registry() -> None:
    remote = {
        "devices": [("deviceid", "integer"), ("devicename", "text"), ("uuid", "text")],
        "pins": [("pinid", "integer")],
    }
    created = [s.as_string(None) for s in table_statements("Fleet", remote, {})]
    assert created[0] == (
        'CREATE FOREIGN TABLE "Fleet"."devices" ("deviceid" integer, "devicename" text, "uuid" text) '
        "SERVER \"f2_registry\" OPTIONS (schema_name 'Fleet', table_name 'devices')"
    )
    assert len(created) == 2
    local = {"devices": [("deviceid", "integer"), ("uuid", "uuid"), ("gone", "text")], "pins": [("pinid", "integer")]}
    changed = [s.as_string(None) for s in table_statements("Fleet", remote, local)]
    assert changed == [
        'ALTER FOREIGN TABLE "Fleet"."devices" ADD COLUMN "devicename" text',
        'ALTER FOREIGN TABLE "Fleet"."devices" ALTER COLUMN "uuid" TYPE text',
        'ALTER FOREIGN TABLE "Fleet"."devices" DROP COLUMN "gone"',
    ]
    assert table_statements("Fleet", remote, remote) == []
