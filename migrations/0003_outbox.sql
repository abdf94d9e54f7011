-- cutover's outbox: every message cutover must deliver after a commit (reset
-- mail, reset webhooks, Clerk-shaped webhooks to the app's consumers), one row
-- per (message, destination). Rows are written in the same transaction as the
-- change they announce, so a crash never loses one; a worker on any copy claims
-- due rows with a lease, so a crash mid-delivery redelivers with the same id.
--   kind:     reset_mail | reset_webhook | webhook
--   status:   pending | delivered | failed
--   seq:      commit order (from cutover_outbox_counter, whose row lock is held
--             until commit), so "earlier" per ordering key is well defined
--   times in milliseconds since the epoch
-- Portable SQL: runs unchanged on PostgreSQL and SQLite.
CREATE TABLE IF NOT EXISTS cutover_outbox (
    seq             BIGINT PRIMARY KEY,
    msg_id          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    ordering_key    TEXT,
    destination     TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    lease_owner     TEXT,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    CONSTRAINT cutover_outbox_status_check CHECK (status IN ('pending', 'delivered', 'failed')),
    CONSTRAINT cutover_outbox_msg_destination UNIQUE (msg_id, destination)
);
CREATE INDEX IF NOT EXISTS cutover_outbox_due ON cutover_outbox (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS cutover_outbox_order ON cutover_outbox (destination, ordering_key, status, seq);
CREATE INDEX IF NOT EXISTS cutover_outbox_created ON cutover_outbox (created_at);

-- One row: the next outbox sequence number. Taking it locks the row until the
-- enqueuing transaction commits, so sequence order is commit order.
CREATE TABLE IF NOT EXISTS cutover_outbox_counter (
    id       BIGINT PRIMARY KEY,
    next_seq BIGINT NOT NULL
);
INSERT INTO cutover_outbox_counter (id, next_seq) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

-- Destinations that keep failing: when one has failed without a success for
-- `[outbox] disable_after_days`, it is disabled (its pending rows fail) until
-- `cutover webhooks enable`.
CREATE TABLE IF NOT EXISTS cutover_outbox_destinations (
    destination   TEXT PRIMARY KEY,
    failing_since BIGINT,
    disabled_at   BIGINT,
    updated_at    BIGINT NOT NULL
);
