//! Writing one Clerk user into Kernia's database: the Kernia `"user"` row
//! and its ledger row, together. This is the single-user writer the test
//! harness seeds users with. `cutover import` writes the same two rows in
//! batches of thousands (`import::store`), through the same column rules
//! ([`super::kernia::insert_user`]'s plugin columns, the ledger's columns);
//! Clerk's webhooks (`user.created` for a user Kernia lacks) go through the
//! import's writer too (`import::store::refresh`), since it also writes the
//! user's emails, phones, accounts and second factors and checks conflicts.

use super::kernia::{self, KerniaSchema, NewUser};
use super::ledger::{self, NewLedgerEntry};
use super::{Conn, DbError};

/// Insert the user and their ledger row. `conn` should be a transaction, so
/// both rows land or neither does. Returns whether the ledger row was new.
///
/// Identifiers must already be in their one form ([`crate::identifier`]).
pub async fn insert(
    conn: &mut Conn<'_>,
    schema: &KerniaSchema,
    user: &NewUser,
    entry: &NewLedgerEntry,
) -> Result<bool, DbError> {
    debug_assert_eq!(user.id, entry.user_id, "one user, one ledger row");
    kernia::insert_user(conn, schema, user).await?;
    ledger::insert_if_absent(conn, entry).await
}
