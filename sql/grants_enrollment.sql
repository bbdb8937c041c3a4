-- Least-privilege grants of the enrollment service's role, f2_enroll (`f2 certs serve` connecting with
-- F2_ENROLL_REGISTRY_DSN), in the registry's database, wherever it lives (beside the time series or in a
-- database of its own). "VtDevice" is the registry schema (F2_REGISTRY_SCHEMA). Applied by `f2 db migrate` and
-- f2-init, connected as the schema owner, when the role exists; re-running it changes nothing.
--
-- What enrollment does (certs/enrollment_store.py): it reads a controller's claiming code by its MAC, reads and
-- writes its own ledger f2_enrollments (INSERT .. ON CONFLICT DO UPDATE), and serialises one MAC's
-- enrollments with an advisory lock (no grant needed). Nothing else: no other registry table or column, no
-- DELETE, nothing of the time series. `f2 certs allow-reenroll` is an operator's command and runs as the owner.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'f2_enroll') THEN
        RAISE EXCEPTION 'role missing: f2_enroll (create it before applying grants_enrollment.sql)';
    END IF;
END
$$;

GRANT USAGE ON SCHEMA "VtDevice" TO f2_enroll;
-- Two columns of the users' devices: the MAC it looks up and the code it compares.
GRANT SELECT (macaddress, claimingcode) ON "VtDevice".devices TO f2_enroll;
GRANT SELECT, INSERT, UPDATE ON "VtDevice".f2_enrollments TO f2_enroll;
