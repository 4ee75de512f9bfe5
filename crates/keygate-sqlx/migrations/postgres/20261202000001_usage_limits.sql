-- Usage limits (SPEC §12): rate-limit windows and credits with refill.
-- Additive only: existing rows keep every value; the new columns are NULL
-- (no rate limit, unlimited credits).
--
-- rate_limits: the windows as JSON ([{"name", "limit", "window_ms"}]),
-- jsonb like meta; NULL means none (an empty list is never stored).
-- credits_remaining: NULL means unlimited; the other credits_* columns mean
-- nothing without it.
--
-- No index on credits_remaining: every metered request updates it, and an
-- indexed column would make each of those updates rewrite every index of
-- the table (no HOT update) for the sake of an occasional `credits_below`
-- listing, which scans instead.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS rate_limits JSONB;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS credits_remaining BIGINT;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS credits_refill_amount BIGINT;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS credits_refill_interval VARCHAR(16);
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS credits_last_refill_at TIMESTAMP WITH TIME ZONE;
