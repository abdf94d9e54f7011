//! What one batch writes and counts, whoever owns its transaction: the
//! driver (one batch at a time, or all of a dry run in one transaction) or a
//! lane of [`super::writers`] (several at once). The run's position, issues
//! and commit are the caller's.

use crate::db::Conn;

use super::issue::{Entity, Issue, IssueKind};
use super::plan::Planned;
use super::produce::{Batch, Items, Record};
use super::report::{Counters, Tally};
use super::store::runs::{Phase, Run};
use super::store::{self, ImportSchema};
use super::{ImportError, ImportOptions};

/// Move the run's position past a batch of `phase` covering `units`.
pub(super) fn advance(run: &mut Run, phase: Phase, units: u64) {
    if run.phase != phase {
        run.phase = phase;
        run.position = 0;
    }
    run.position += units;
}

/// Write a batch's rows and count them into `c` (the run's counters, or a
/// batch's own when batches are written concurrently).
/// The run's position and issues are the caller's.
pub(super) async fn write_items(
    conn: &mut Conn<'_>,
    schema: &ImportSchema,
    opts: &ImportOptions,
    batch: Batch,
    now: i64,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<(), ImportError> {
    if batch.phase == Phase::Users {
        c.user_records += batch.records;
    }
    match batch.items {
        Items::Users(planned) => {
            let mut plans = Vec::with_capacity(planned.len());
            for p in planned {
                match p {
                    Planned::User(u) => {
                        c.users.input += 1;
                        plans.push(*u);
                    }
                    Planned::Invalid(found) => {
                        if found.len() == 1 && found[0].entity == Entity::File {
                            c.file_problems += 1;
                        } else {
                            c.users.input += 1;
                            c.users.invalid += 1;
                        }
                        issues.extend(found);
                    }
                }
            }
            // Users an earlier run (or a webhook) wrote are refreshed, not skipped.
            let fresh = store::refresh::known_users(
                conn,
                schema,
                plans,
                store::refresh::csv_exported_at(&opts.inputs.csv),
                c,
                issues,
            )
            .await?;
            store::users::write(conn, schema, fresh.plans, &fresh.ledgered, c, issues).await?;
        }
        Items::Organizations(records) => {
            let valid = sort_out(records, |c| &mut c.organizations, c, issues);
            if schema.organizations() {
                let valid =
                    store::refresh::known_organizations(conn, valid, now, c, issues).await?;
                store::orgs::write_organizations(conn, valid, now, c, issues).await?;
            } else {
                no_plugin(
                    c,
                    Entity::Organization,
                    |c| &mut c.organizations,
                    valid.len(),
                    issues,
                );
            }
        }
        Items::Memberships(records) => {
            let valid = sort_out(records, |c| &mut c.memberships, c, issues);
            if schema.organizations() {
                let valid =
                    store::refresh::known_members(conn, valid, &opts.roles, now, c, issues).await?;
                store::orgs::write_members(conn, valid, &opts.roles, now, c, issues).await?;
            } else {
                no_plugin(
                    c,
                    Entity::Membership,
                    |c| &mut c.memberships,
                    valid.len(),
                    issues,
                );
            }
        }
        Items::Invitations(records) => {
            let valid = sort_out(records, |c| &mut c.invitations, c, issues);
            if schema.organizations() {
                store::orgs::write_invitations(conn, valid, &opts.roles, now, c, issues).await?;
            } else {
                no_plugin(
                    c,
                    Entity::Invitation,
                    |c| &mut c.invitations,
                    valid.len(),
                    issues,
                );
            }
        }
    }
    Ok(())
}

/// Count a spooled batch's records and keep the valid ones.
fn sort_out<T>(
    records: Vec<Record<T>>,
    tally: fn(&mut Counters) -> &mut Tally,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Vec<T> {
    let mut valid = Vec::with_capacity(records.len());
    for r in records {
        match r {
            Record::Valid(v) => {
                tally(c).input += 1;
                valid.push(v);
            }
            Record::Invalid(found) => {
                tally(c).input += 1;
                tally(c).invalid += 1;
                issues.extend(found);
            }
            Record::File(issue) => {
                c.file_problems += 1;
                issues.push(issue);
            }
        }
    }
    valid
}

fn no_plugin(
    c: &mut Counters,
    entity: Entity,
    tally: fn(&mut Counters) -> &mut Tally,
    n: usize,
    issues: &mut Vec<Issue>,
) {
    if n == 0 {
        return;
    }
    tally(c).skipped += n as u64;
    *c.skipped_reasons
        .entry(format!(
            "{}: organization plugin not installed",
            entity.as_str()
        ))
        .or_default() += n as u64;
    issues.push(Issue::new(IssueKind::Warning, Entity::File, None,
        format!("{n} record(s) skipped: Kernia's database has no organization, member or invitation table")));
}
