-- How far retention has dropped each hypertable: everything before `dropped_before` may be gone. An
-- aggregate window before the raw readings' watermark is never recomputed, so dropping raw chunks can
-- never erase aggregate rows that are still inside their own (longer) retention window.
CREATE TABLE IF NOT EXISTS f2_retention_watermarks (
    hypertable text PRIMARY KEY,
    dropped_before timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
