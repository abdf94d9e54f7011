-- The operator's control plane.
--
-- cutover_rollout: the live rollout, one row (id = 1), versioned. Seeded from the
-- file's [rollout] on first start; afterwards the database wins. `settings` is
-- JSON: percentage, kill_switch, reauth_migrated_clerk_sessions, allow/deny lists.
-- Every change bumps `version` (compare-and-set on the old version) and appends
-- one row to cutover_rollout_history in the same transaction.
-- Portable SQL: runs unchanged on PostgreSQL and SQLite.
CREATE TABLE IF NOT EXISTS cutover_rollout (
    id         BIGINT PRIMARY KEY,
    version    BIGINT NOT NULL,
    settings   TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT cutover_rollout_single_row CHECK (id = 1)
);

-- The audit trail: when, what (field names), from -> to (JSON of those fields),
-- why, through which interface (file | cli | api), by whom when known.
CREATE TABLE IF NOT EXISTS cutover_rollout_history (
    version       BIGINT PRIMARY KEY,
    changed_at_ms BIGINT NOT NULL,
    fields        TEXT NOT NULL,
    from_value    TEXT NOT NULL,
    to_value      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    interface     TEXT NOT NULL,
    actor         TEXT,
    settings      TEXT NOT NULL
);

-- When each user was last seen through cutover, as a day number (epoch day).
-- Written in batches, at most once per user per day per copy: never per request.
CREATE TABLE IF NOT EXISTS cutover_user_seen (
    user_id       TEXT PRIMARY KEY,
    last_seen_day BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS cutover_user_seen_day ON cutover_user_seen (last_seen_day);

-- One row per day: the progress figures as they stood that day, so the
-- dashboard can chart active coverage over time (last-seen alone cannot be
-- replayed). Upserted by every running copy now and then; idempotent.
CREATE TABLE IF NOT EXISTS cutover_progress_daily (
    day             BIGINT PRIMARY KEY,
    users           BIGINT NOT NULL,
    migrated        BIGINT NOT NULL,
    active          BIGINT NOT NULL,
    active_migrated BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
