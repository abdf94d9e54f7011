-- Live sync with Clerk while both run (issue 11).
--
-- cutover_clerk_events: every Clerk webhook applied, by its svix-id. Written in
-- the same transaction as the change it made, so a retried delivery (Svix
-- sends the same id again) is recognised and changes nothing.
--   outcome: applied | stale | ignored | invalid
-- Portable SQL: runs unchanged on PostgreSQL and SQLite.
CREATE TABLE IF NOT EXISTS cutover_clerk_events (
    svix_id     TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    object_id   TEXT,
    outcome     TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

-- cutover_clerk_objects: per Clerk object (user, organization, membership,
-- invitation), the version of the newest change applied — Clerk's `updated_at`
-- in milliseconds, or the deletion event's timestamp — so deliveries that
-- arrive out of order converge: an older change never overwrites a newer one,
-- and nothing comes back after a deletion.
CREATE TABLE IF NOT EXISTS cutover_clerk_objects (
    object_id  TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at BIGINT NOT NULL
);

-- The ledger learns when its digest was exported (NULL: at `imported_at`) and
-- when Clerk said the password changed after that (the digest is then stale:
-- dropped, never used again).
ALTER TABLE cutover_ledger ADD COLUMN digest_exported_at BIGINT;
ALTER TABLE cutover_ledger ADD COLUMN digest_stale_at BIGINT;
