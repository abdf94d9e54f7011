-- The ledger's look-ups by email, username and phone number only ever ask for a
-- value (`column = $1`), never for NULL; most Clerk users have no username and
-- no phone number. Index only the rows that have one: an import no longer
-- writes an index entry per NULL (about 1.7 million on a typical 1,000,000-user
-- export), and both engines still answer `column = $1` from these indexes,
-- since an equality implies IS NOT NULL.
-- Portable SQL: runs unchanged on PostgreSQL and SQLite.
DROP INDEX IF EXISTS cutover_ledger_email;
DROP INDEX IF EXISTS cutover_ledger_username;
DROP INDEX IF EXISTS cutover_ledger_phone;
CREATE INDEX IF NOT EXISTS cutover_ledger_email ON cutover_ledger (email) WHERE email IS NOT NULL;
CREATE INDEX IF NOT EXISTS cutover_ledger_username ON cutover_ledger (username) WHERE username IS NOT NULL;
CREATE INDEX IF NOT EXISTS cutover_ledger_phone ON cutover_ledger (phone) WHERE phone IS NOT NULL;
