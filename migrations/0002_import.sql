-- cutover import runs: where an interrupted `cutover import` goes on, what it
-- counted, and every issue it met. One row per run; a run is identified by the
-- fingerprint of its input files, so the same inputs resume the same run.
--   state: running | finished | abandoned
--   phase: users | organizations | memberships | invitations | done
--   units_done: how many units (user ids, records) of `phase` are committed
-- Portable SQL: runs unchanged on PostgreSQL and SQLite.
CREATE TABLE IF NOT EXISTS cutover_import_runs (
    id          TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    state       TEXT NOT NULL,
    phase       TEXT NOT NULL,
    units_done  BIGINT NOT NULL DEFAULT 0,
    counters    TEXT NOT NULL DEFAULT '{}',
    issue_count BIGINT NOT NULL DEFAULT 0,
    started_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    finished_at BIGINT,
    CONSTRAINT cutover_import_runs_state_check CHECK (state IN ('running', 'finished', 'abandoned'))
);
CREATE INDEX IF NOT EXISTS cutover_import_runs_fingerprint ON cutover_import_runs (fingerprint, state);

-- Issues of a run, in the order met: bad rows (with file, line and column or
-- JSON path, as JSON in `location`), conflicts, skipped records, users to ask
-- to re-enrol a factor, warnings. Never a digest or a TOTP secret.
CREATE TABLE IF NOT EXISTS cutover_import_issues (
    run_id    TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    entity    TEXT NOT NULL,
    record_id TEXT,
    location  TEXT,
    message   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
