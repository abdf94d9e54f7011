//! The producer side of a run: walks the staged input from where the run
//! stands, maps each unit (pure code) and hands over batches.
//!
//! It runs on its own thread, so reading and mapping the next batch overlaps
//! with the database writing the current ones; the channel holds two batches
//! (one when several are written at once), which bounds memory.

use tokio::sync::mpsc;

use super::ImportError;
use super::duplicates::Losses;
use super::issue::Issue;
use super::plan::{self, Planned};
use super::records::{InviteRecord, MemberRecord, OrgRecord};
use super::spool::SpoolReader;
use super::stage::{Groups, Staged, Staging, UserUnit};
use super::store::runs::Phase;

/// Units of one phase, ready to write.
#[derive(Debug)]
pub struct Batch {
    pub phase: Phase,
    /// Units (user ids or records) this batch covers.
    pub units: u64,
    /// Input records this batch covers, for progress.
    pub records: u64,
    /// Input records a resumed run skipped before this batch (done by the
    /// interrupted run), so progress starts where the work stands.
    pub skipped: u64,
    pub items: Items,
}

#[derive(Debug)]
pub enum Items {
    Users(Vec<Planned>),
    Organizations(Vec<Record<OrgRecord>>),
    Memberships(Vec<Record<MemberRecord>>),
    Invitations(Vec<Record<InviteRecord>>),
}

/// A record of a spooled entity, or why it is not one.
#[derive(Debug)]
pub enum Record<T> {
    Valid(T),
    /// Bad input: counted as one invalid record.
    Invalid(Vec<Issue>),
    /// A problem with a whole file: not a record.
    File(Issue),
}

/// Where the producer starts, and how it works.
pub struct Plan {
    pub phase: Phase,
    pub position: u64,
    pub batch_size: usize,
    pub strict: bool,
    pub csv_name: String,
    pub now: i64,
}

pub type Sender = mpsc::Sender<Result<Batch, ImportError>>;

/// Produce every batch from `plan.phase`/`plan.position` on.
pub fn produce(staging: Staging, plan: Plan, tx: Sender) {
    if let Err(e) = run(staging, &plan, &tx) {
        let _ = tx.blocking_send(Err(e));
    }
}

fn send(tx: &Sender, batch: Batch) -> Result<(), ImportError> {
    tx.blocking_send(Ok(batch))
        .map_err(|_| ImportError::Internal("the writer stopped".into()))
}

fn run(staging: Staging, plan: &Plan, tx: &Sender) -> Result<(), ImportError> {
    let start = |phase: Phase| {
        if phase == plan.phase {
            plan.position
        } else {
            0
        }
    };
    if plan.phase <= Phase::Users {
        let sorted = staging.users.read().map_err(ImportError::Spool)?;
        let mut losses = staging.duplicates;
        users(
            Groups::new(sorted),
            start(Phase::Users),
            plan,
            &mut losses,
            tx,
        )?;
    }
    if plan.phase <= Phase::Organizations {
        spooled(
            staging.organizations,
            Phase::Organizations,
            start(Phase::Organizations),
            plan,
            tx,
            |s| match s {
                Staged::Org(o) => Some(o),
                _ => None,
            },
            Items::Organizations,
        )?;
    }
    if plan.phase <= Phase::Memberships {
        spooled(
            staging.memberships,
            Phase::Memberships,
            start(Phase::Memberships),
            plan,
            tx,
            |s| match s {
                Staged::Member(m) => Some(m),
                _ => None,
            },
            Items::Memberships,
        )?;
    }
    if plan.phase <= Phase::Invitations {
        spooled(
            staging.invitations,
            Phase::Invitations,
            start(Phase::Invitations),
            plan,
            tx,
            |s| match s {
                Staged::Invite(i) => Some(i),
                _ => None,
            },
            Items::Invitations,
        )?;
    }
    Ok(())
}

fn users(
    mut groups: Groups,
    skip: u64,
    plan: &Plan,
    losses: &mut Losses,
    tx: &Sender,
) -> Result<(), ImportError> {
    let mut seen = 0u64;
    let mut items = Vec::with_capacity(plan.batch_size);
    let mut records = 0u64;
    let mut skipped = 0u64;
    while let Some(unit) = groups.next_unit()? {
        // Input records (CSV rows, API objects; a bad one counts too), as the
        // progress total counts them; a problem with a whole file is none.
        let size = match &unit {
            UserUnit::Group(g) => (g.csv.len() + g.api.len()).max(1) as u64,
            UserUnit::Orphan(_) => 1,
            UserUnit::File(_) => 0,
        };
        seen += 1;
        if seen <= skip {
            skipped += size;
            continue;
        }
        records += size;
        let mut planned = match unit {
            UserUnit::Group(g) => plan::plan(g, &plan.csv_name, plan.now),
            UserUnit::Orphan(issues) => Planned::Invalid(issues),
            UserUnit::File(issue) => Planned::Invalid(vec![issue]),
        };
        if let Planned::User(u) = &mut planned {
            u.loses_to = losses.remove(&u.user.id);
        }
        if plan.strict
            && let Planned::Invalid(issues) = &planned
            && let Some(first) = issues
                .iter()
                .find(|i| i.kind == super::issue::IssueKind::Invalid)
        {
            return Err(ImportError::Strict(Box::new(first.clone())));
        }
        items.push(planned);
        if items.len() >= plan.batch_size {
            let units = items.len() as u64;
            send(
                tx,
                Batch {
                    phase: Phase::Users,
                    units,
                    records,
                    skipped: std::mem::take(&mut skipped),
                    items: Items::Users(std::mem::take(&mut items)),
                },
            )?;
            records = 0;
        }
    }
    let units = items.len() as u64;
    send(
        tx,
        Batch {
            phase: Phase::Users,
            units,
            records,
            skipped,
            items: Items::Users(items),
        },
    )
}

fn spooled<T>(
    reader: SpoolReader,
    phase: Phase,
    skip: u64,
    plan: &Plan,
    tx: &Sender,
    valid: impl Fn(Staged) -> Option<T>,
    wrap: impl Fn(Vec<Record<T>>) -> Items,
) -> Result<(), ImportError> {
    let mut items = Vec::with_capacity(plan.batch_size);
    let mut skipped = 0u64;
    for (i, entry) in reader.enumerate() {
        if (i as u64) < skip {
            skipped += 1;
            continue;
        }
        let entry = entry.map_err(ImportError::Spool)?;
        let staged = Staged::decode(&entry.body).map_err(ImportError::Spool)?;
        let record = match staged {
            Staged::Bad(issues) => Record::Invalid(issues),
            Staged::File(issue) => Record::File(issue),
            other => match valid(other) {
                Some(v) => Record::Valid(v),
                None => Record::Invalid(Vec::new()),
            },
        };
        items.push(record);
        if items.len() >= plan.batch_size {
            let n = items.len() as u64;
            send(
                tx,
                Batch {
                    phase,
                    units: n,
                    records: n,
                    skipped: std::mem::take(&mut skipped),
                    items: wrap(std::mem::take(&mut items)),
                },
            )?;
        }
    }
    let n = items.len() as u64;
    send(
        tx,
        Batch {
            phase,
            units: n,
            records: n,
            skipped,
            items: wrap(items),
        },
    )
}
