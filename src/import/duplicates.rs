//! Identifiers that more than one user of an export claims.
//!
//! Kernia keeps a user's email, username and phone number unique, so when two
//! users of one export share one of them only one can have it. For each shared
//! value, on its own, the user who keeps it is chosen by this rule:
//!
//! 1. a verified email address or phone number wins over an unverified one;
//! 2. then the older account (Clerk's `created_at`; a user with no creation
//!    time counts as created when the import started);
//! 3. then the smaller user id, so that the outcome never depends on the order
//!    of rows or files.
//!
//! The others are not imported: each is reported as a conflict naming the
//! value and the user who keeps it. (Before this rule the first id in sort
//! order won, so a duplicate whose id happened to sort first took a real
//! user's address — and her social accounts with it.)
//!
//! This is decided before anything is written, in a first pass over the whole
//! export: each imported user's values go through an external sort by value,
//! so memory stays bounded; only the losers are kept in memory.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;

use std::sync::mpsc::sync_channel;

use super::ImportError;
use super::plan::{self, Planned, UserPlan};
use super::spool::{Chunk, Sorted, SortedRuns, Sorter, WorkDir};
use super::stage::{Groups, UserUnit};

/// Why a user is not imported: another user of the export keeps a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// `email`, `username` or `phone number`.
    pub field: &'static str,
    pub value: String,
    /// The user who keeps it.
    pub winner: String,
}

/// Losers by user id.
pub type Losses = HashMap<String, Loss>;

const FIELDS: [&str; 3] = ["email", "username", "phone number"];

/// One user's claim on one value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claim {
    id: String,
    verified: bool,
    created_at: i64,
}

/// The unique values a planned user would hold in Kernia: (field, value, verified).
fn values(p: &UserPlan) -> Vec<(usize, String, bool)> {
    let u = &p.user;
    let mut out = vec![(0, u.email.clone(), u.email_verified)];
    if let Some(n) = &u.username {
        out.push((1, n.clone(), false));
    }
    if let Some(ph) = &u.phone_number {
        out.push((2, ph.clone(), u.phone_number_verified));
    }
    out
}

/// The order of the rule: the first claim keeps the value.
fn rank(a: &Claim, b: &Claim) -> std::cmp::Ordering {
    b.verified
        .cmp(&a.verified)
        .then(a.created_at.cmp(&b.created_at))
        .then(a.id.cmp(&b.id))
}

/// A claim in a sort entry: verified (one byte), creation time (eight,
/// little-endian), then the id. Written from the planned user's own fields.
fn encode_claim(id: &str, verified: bool, created_at: i64, out: &mut Vec<u8>) {
    out.push(u8::from(verified));
    out.extend_from_slice(&created_at.to_le_bytes());
    out.extend_from_slice(id.as_bytes());
}

impl Claim {
    #[cfg(test)]
    fn encode_into(&self, out: &mut Vec<u8>) {
        encode_claim(&self.id, self.verified, self.created_at, out);
    }

    fn decode(body: &[u8]) -> io::Result<Claim> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "a damaged claim");
        let (head, id) = body.split_at_checked(9).ok_or_else(bad)?;
        let created_at = i64::from_le_bytes(head[1..9].try_into().map_err(|_| bad())?);
        Ok(Claim {
            id: String::from_utf8(id.to_vec()).map_err(|_| bad())?,
            verified: head[0] != 0,
            created_at,
        })
    }
}

/// Claims per message from the thread that reads the users back to the one
/// that sorts the claims.
const CLAIMS: usize = 1024;

/// Read every user (as [`plan::plan`] maps them) and settle each shared value.
///
/// One thread reads the sorted users back (merging the runs, decoding and
/// planning each user) and hands over the claims, a chunk at a time, to this
/// one, which sorts them.
pub fn decide(
    users: &SortedRuns,
    dir: &mut WorkDir,
    budget: usize,
    csv_name: &str,
    now: i64,
) -> Result<Losses, ImportError> {
    // A claim is a few dozen bytes: a quarter of the sort budget is plenty, and
    // bounds what this pass adds to the memory the users' sort already holds.
    let mut sorter = Sorter::new(budget / 4);
    let sorted = users.read().map_err(ImportError::Spool)?;
    std::thread::scope(|s| -> Result<(), ImportError> {
        let (to, from) = sync_channel::<Result<Chunk, ImportError>>(4);
        s.spawn(move || {
            let result = claims(sorted, csv_name, now, |chunk| to.send(Ok(chunk)).is_ok());
            if let Err(e) = result {
                let _ = to.send(Err(e));
            }
        });
        // On an error `from` is dropped on return, which ends the reader.
        for chunk in from {
            for entry in chunk?.into_entries() {
                let entry = entry.map_err(ImportError::Spool)?;
                sorter.push(dir, entry).map_err(ImportError::Spool)?;
            }
        }
        Ok(())
    })?;
    let mut losses = Losses::new();
    let mut key = String::new();
    let mut claims: Vec<Claim> = Vec::new();
    for entry in sorter.finish(dir).map_err(ImportError::Spool)? {
        let entry = entry.map_err(ImportError::Spool)?;
        if entry.key != key {
            settle(&key, &mut claims, &mut losses);
            key = entry.key;
        }
        claims.push(Claim::decode(&entry.body).map_err(ImportError::Spool)?);
    }
    settle(&key, &mut claims, &mut losses);
    Ok(losses)
}

/// Plan every user of `sorted` and hand `send` their claims, a chunk at a
/// time, until it returns `false`.
fn claims(
    sorted: Sorted,
    csv_name: &str,
    now: i64,
    mut send: impl FnMut(Chunk) -> bool,
) -> Result<(), ImportError> {
    let mut groups = Groups::new(sorted);
    let mut chunk = Chunk::with_capacity(CLAIMS, CLAIMS * 64);
    let mut position = 0u64;
    let mut key = String::new();
    while let Some(unit) = groups.next_unit()? {
        let UserUnit::Group(group) = unit else {
            continue;
        };
        let Planned::User(p) = plan::plan(group, csv_name, now) else {
            continue;
        };
        for (field, value, verified) in values(&p) {
            position += 1;
            key.clear();
            let _ = write!(key, "{field}\0{value}");
            chunk
                .push(&key, 0, 0, position, |body| {
                    encode_claim(&p.user.id, verified, p.user.created_at, body);
                    Ok(())
                })
                .map_err(ImportError::Spool)?;
        }
        if chunk.len() >= CLAIMS
            && !send(std::mem::replace(
                &mut chunk,
                Chunk::with_capacity(CLAIMS, CLAIMS * 64),
            ))
        {
            return Ok(());
        }
    }
    if !chunk.is_empty() {
        send(chunk);
    }
    Ok(())
}

/// Pick the keeper of one value among its claims; record the others.
fn settle(key: &str, claims: &mut Vec<Claim>, losses: &mut Losses) {
    if claims.len() > 1 {
        claims.sort_by(rank);
        let (field, value) = key.split_once('\0').unwrap_or(("0", key));
        let field = FIELDS[field.parse::<usize>().unwrap_or(0).min(2)];
        let winner = &claims[0].id;
        for c in &claims[1..] {
            if &c.id != winner {
                losses.entry(c.id.clone()).or_insert_with(|| Loss {
                    field,
                    value: value.to_string(),
                    winner: winner.clone(),
                });
            }
        }
    }
    claims.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: &str, verified: bool, created_at: i64) -> Claim {
        Claim {
            id: id.into(),
            verified,
            created_at,
        }
    }

    fn winner(mut claims: Vec<Claim>) -> (String, Losses) {
        let mut losses = Losses::new();
        settle("0\0a@b.com", &mut claims, &mut losses);
        let loser_of = |id: &str| losses.get(id).map(|l| l.winner.clone());
        let w = losses
            .values()
            .next()
            .map(|l| l.winner.clone())
            .unwrap_or_default();
        assert!(loser_of(&w).is_none());
        (w, losses)
    }

    #[test]
    fn a_verified_address_wins_then_the_older_account_then_the_smaller_id() {
        // Whatever order the claims arrive in.
        for flip in [false, true] {
            let mut c = vec![
                claim("user_a_dup", false, 100),
                claim("user_z_real", true, 900),
            ];
            if flip {
                c.reverse();
            }
            let (w, losses) = winner(c);
            assert_eq!(w, "user_z_real");
            assert_eq!(losses["user_a_dup"].field, "email");
            assert_eq!(losses["user_a_dup"].value, "a@b.com");

            let mut c = vec![
                claim("user_a_new", true, 900),
                claim("user_z_old", true, 100),
            ];
            if flip {
                c.reverse();
            }
            assert_eq!(winner(c).0, "user_z_old");

            let mut c = vec![claim("user_b", true, 100), claim("user_a", true, 100)];
            if flip {
                c.reverse();
            }
            assert_eq!(winner(c).0, "user_a");
        }
    }

    #[test]
    fn claims_read_back_as_written_and_damage_is_an_error() {
        for c in [
            claim("user_2abc", true, 1_700_000_000),
            claim("", false, -1),
            claim("user_é", false, i64::MAX),
        ] {
            let mut body = Vec::new();
            c.encode_into(&mut body);
            assert_eq!(Claim::decode(&body).unwrap(), c);
        }
        assert!(Claim::decode(&[1, 2, 3]).is_err());
        assert!(Claim::decode(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]).is_err());
    }

    #[test]
    fn a_value_with_one_claim_loses_nobody() {
        let mut losses = Losses::new();
        settle(
            "0\0a@b.com",
            &mut vec![claim("user_a", false, 1)],
            &mut losses,
        );
        assert!(losses.is_empty());
    }
}
