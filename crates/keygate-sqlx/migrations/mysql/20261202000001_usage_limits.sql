-- Usage limits (SPEC §12): rate-limit windows and credits with refill.
-- Additive only: existing rows keep every value; the new columns are NULL
-- (no rate limit, unlimited credits).
--
-- rate_limits: the windows as JSON ([{"name", "limit", "window_ms"}]), like
-- meta; NULL means none (an empty list is never stored). credits_remaining:
-- NULL means unlimited; the other credits_* columns mean nothing without
-- it. credits_last_refill_at: naive UTC, like every other time here.
--
-- No index on credits_remaining: every metered request updates it, and an
-- index would be rewritten on each of them for the sake of an occasional
-- `credits_below` listing, which scans instead.
ALTER TABLE api_keys
    ADD COLUMN rate_limits JSON NULL,
    ADD COLUMN credits_remaining BIGINT NULL,
    ADD COLUMN credits_refill_amount BIGINT NULL,
    ADD COLUMN credits_refill_interval VARCHAR(16) NULL,
    ADD COLUMN credits_last_refill_at DATETIME(6) NULL;
