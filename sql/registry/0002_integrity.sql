-- f2:replaces 61d7a642c36938066efa4d6ecfa9cb2b35f3ade23584fef42b44ff5e21bb195c
-- The platform's own columns beside the reference deployment's: a template's frame check and reporting
-- interval, a datapoint's plausible range. Additions only; an existing registry keeps every row and column.
--
-- This file replaces its first form, which also added keys and foreign keys validated against existing rows:
-- on the reference deployment's registries (rows its own tools write, such as datapointiconid 0) that failed
-- and nothing started. The keys and constraints are now added by 0006, where rows that break them leave them
-- NOT VALID instead; databases that applied the first form keep it, and 0005/0006 bring them to the same end.
ALTER TABLE "VtDevice".devicetemplates
    ADD COLUMN IF NOT EXISTS frame_check text NOT NULL DEFAULT 'none',
    ADD COLUMN IF NOT EXISTS expected_interval_s integer;

ALTER TABLE "VtDevice".datapoints
    ADD COLUMN IF NOT EXISTS min_value double precision,
    ADD COLUMN IF NOT EXISTS max_value double precision;
