-- The enrollment ledger of `f2 certs serve`: one row per controller that obtained its certificate with
-- its claiming code. A claiming code enrolls once; `f2 certs allow-reenroll <mac>` sets reenroll_allowed,
-- which the next enrollment consumes. The platform's own table: no foreign key into the users' registry
-- (a controller deleted and added again with the same MAC still needs an operator to enroll again).
CREATE TABLE IF NOT EXISTS "VtDevice".f2_enrollments (
    mac text PRIMARY KEY
        CONSTRAINT f2_enrollments_mac_check CHECK (mac ~ '^[0-9a-f]{12}$'),
    serial text NOT NULL,
    previous_serial text,
    not_after timestamptz NOT NULL,
    key_source text NOT NULL
        CONSTRAINT f2_enrollments_key_source_check CHECK (key_source IN ('csr', 'generated')),
    client_address text,
    enrolled_at timestamptz NOT NULL DEFAULT now(),
    enrollments integer NOT NULL DEFAULT 1
        CONSTRAINT f2_enrollments_enrollments_check CHECK (enrollments >= 1),
    reenroll_allowed boolean NOT NULL DEFAULT false,
    reenroll_allowed_at timestamptz
);

COMMENT ON TABLE "VtDevice".f2_enrollments IS
    'Controllers enrolled through f2 certs serve; reenroll_allowed is set by f2 certs allow-reenroll';
