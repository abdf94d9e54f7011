-- cutover's migration ledger: one row per Clerk user, created by `cutover import`
-- and moved along by sign-ins, resets and webhooks.
--   pending_password --(right password at sign-in)--> migrated
--   pending_reset    --(reset completed)-------------> migrated
--   social_only      --(social sign-in completed)----> migrated
--   any              --(deleted at Clerk)------------> removed
-- Portable SQL: runs unchanged on PostgreSQL and SQLite.
CREATE TABLE IF NOT EXISTS cutover_ledger (
    user_id            TEXT PRIMARY KEY,
    email              TEXT,
    username           TEXT,
    phone              TEXT,
    secondary_emails   TEXT NOT NULL DEFAULT '[]',
    hasher             TEXT,
    digest             TEXT,
    state              TEXT NOT NULL,
    method             TEXT,
    had_backup_codes   BOOLEAN NOT NULL DEFAULT FALSE,
    had_passkeys       BOOLEAN NOT NULL DEFAULT FALSE,
    legacy_failures    BIGINT NOT NULL DEFAULT 0,
    imported_at        BIGINT NOT NULL,
    migrated_at        BIGINT,
    reset_requested_at BIGINT,
    updated_at         BIGINT NOT NULL,
    CONSTRAINT cutover_ledger_state_check CHECK (
        state IN ('pending_password', 'pending_reset', 'social_only', 'migrated', 'removed')
    )
);
CREATE INDEX IF NOT EXISTS cutover_ledger_email ON cutover_ledger (email);
CREATE INDEX IF NOT EXISTS cutover_ledger_username ON cutover_ledger (username);
CREATE INDEX IF NOT EXISTS cutover_ledger_phone ON cutover_ledger (phone);
CREATE INDEX IF NOT EXISTS cutover_ledger_state ON cutover_ledger (state);
