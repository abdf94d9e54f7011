//! Phase one: read and check every input, before anything is written.
//!
//! Users (CSV rows and API objects) go into the external sort by id;
//! organizations, memberships and invitations into spools in input order. Bad
//! records travel along as issues under their id, so they are recorded with the
//! batch that holds that id — exactly once, even across a resume. With
//! `strict`, the first bad record stops the run here, before any write.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::ImportError;
use super::bapi;
use super::csv_export::{CsvExport, CsvRow};
use super::duplicates::Losses;
use super::issue::{Entity, Issue, IssueKind, Location};
use super::json_input;
use super::plan::UserGroup;
use super::records::{ApiUser, CsvUser, InviteRecord, MemberRecord, OrgRecord};
use super::spool::{Entry, Sorted, SortedRuns, Sorter, Spool, SpoolReader, WorkDir};

/// The files an import reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    pub csv: Vec<PathBuf>,
    pub users: Vec<PathBuf>,
    pub organizations: Vec<PathBuf>,
    pub memberships: Vec<PathBuf>,
    pub invitations: Vec<PathBuf>,
}

impl Inputs {
    pub fn all(&self) -> impl Iterator<Item = &PathBuf> {
        self.csv
            .iter()
            .chain(&self.users)
            .chain(&self.organizations)
            .chain(&self.memberships)
            .chain(&self.invitations)
    }
}

/// One record in a temporary file.
#[derive(Debug, Serialize, Deserialize)]
pub enum Staged {
    Csv(CsvUser),
    Api(ApiUser),
    /// A bad record (its problems); counted as one input record.
    Bad(Vec<Issue>),
    /// A problem with a whole file; not a record.
    File(Issue),
    Org(OrgRecord),
    Member(MemberRecord),
    Invite(InviteRecord),
}

const SOURCE_FILE: u8 = 0;
const SOURCE_CSV: u8 = 1;
const SOURCE_API: u8 = 2;
const SOURCE_BAD: u8 = 3;

/// Everything read, ready to be written.
pub struct Staging {
    /// User records sorted by id, read twice: by [`super::duplicates`], then
    /// to write.
    pub users: SortedRuns,
    /// Users that lose a shared identifier to another user of the export
    /// (filled in after staging).
    pub duplicates: Losses,
    pub organizations: SpoolReader,
    pub memberships: SpoolReader,
    pub invitations: SpoolReader,
    /// Records in each stream (user records: CSV rows and API objects), for
    /// progress.
    pub totals: [u64; 4],
}

/// Display name of an input file in messages.
pub fn display(path: &Path) -> String {
    path.display().to_string()
}

struct Stager<'a> {
    dir: &'a mut WorkDir,
    strict: bool,
}

impl Stager<'_> {
    /// A bad record: stop under `strict`, else keep it for the report.
    fn bad(&self, issues: &[Issue]) -> Result<(), ImportError> {
        match (self.strict, issues.first()) {
            (true, Some(first)) => Err(ImportError::Strict(Box::new(first.clone()))),
            _ => Ok(()),
        }
    }

    fn file_problem(&self, file: &Path, message: String) -> Result<Staged, ImportError> {
        let issue = Issue::invalid(Entity::File, None, Location::file(&display(file)), message);
        self.bad(std::slice::from_ref(&issue))?;
        Ok(Staged::File(issue))
    }
}

fn entry(
    key: &str,
    source: u8,
    file: usize,
    position: u64,
    record: &Staged,
) -> Result<Entry, ImportError> {
    Ok(Entry {
        key: key.to_string(),
        source,
        file: file as u32,
        position,
        body: serde_json::to_vec(record).map_err(|e| ImportError::Spool(io::Error::other(e)))?,
    })
}

/// Read every input. `sort_budget` bounds the memory the user sort may hold.
pub fn stage(
    inputs: &Inputs,
    dir: &mut WorkDir,
    sort_budget: usize,
    strict: bool,
) -> Result<Staging, ImportError> {
    let mut sorter = Sorter::new(sort_budget);
    let mut st = Stager { dir, strict };
    let mut ordinal = 0u64;
    // Entries about whole files, which are not user records.
    let mut file_entries = 0u64;
    for (f, path) in inputs.csv.iter().enumerate() {
        let name = display(path);
        let mut export = CsvExport::open(path, &name)?;
        for column in &export.missing_columns {
            let issue = Issue::new(
                IssueKind::Warning,
                Entity::File,
                None,
                format!("no `{column}` column: read as empty"),
            )
            .at(Location::file(&name));
            sorter
                .push(
                    st.dir,
                    entry("", SOURCE_FILE, f, ordinal, &Staged::File(issue))?,
                )
                .map_err(ImportError::Spool)?;
            ordinal += 1;
            file_entries += 1;
        }
        while let Some(row) = export.next_row() {
            ordinal += 1;
            let (key, source, record) = match row {
                Ok(CsvRow::User(u)) => (u.id.clone(), SOURCE_CSV, Staged::Csv(*u)),
                Ok(CsvRow::Bad { id, issues }) => {
                    st.bad(&issues)?;
                    (id.unwrap_or_default(), SOURCE_BAD, Staged::Bad(issues))
                }
                Err(ImportError::Input(message)) => {
                    let record = st.file_problem(
                        path,
                        format!("{message}; the rest of the file was not read"),
                    )?;
                    sorter
                        .push(st.dir, entry("", SOURCE_FILE, f, ordinal, &record)?)
                        .map_err(ImportError::Spool)?;
                    file_entries += 1;
                    break;
                }
                Err(e) => return Err(e),
            };
            sorter
                .push(st.dir, entry(&key, source, f, ordinal, &record)?)
                .map_err(ImportError::Spool)?;
        }
    }
    let csv_files = inputs.csv.len();
    for (f, path) in inputs.users.iter().enumerate() {
        let name = display(path);
        let f = csv_files + f;
        let result =
            json_input::for_each_element(path, &name, |at, raw| {
                ordinal += 1;
                let (key, source, record) =
                    match check::<bapi::User, _>(&name, &at, raw, Entity::User, |u| {
                        u.check(&name, &at)
                    }) {
                        Ok(u) => (u.id.clone(), SOURCE_API, Staged::Api(u)),
                        Err((id, issues)) => {
                            st.bad(&issues)?;
                            (id.unwrap_or_default(), SOURCE_BAD, Staged::Bad(issues))
                        }
                    };
                sorter
                    .push(st.dir, entry(&key, source, f, ordinal, &record)?)
                    .map_err(ImportError::Spool)
            });
        if let Err(ImportError::Input(message)) = result {
            ordinal += 1;
            let record = st.file_problem(path, message)?;
            sorter
                .push(st.dir, entry("", SOURCE_FILE, f, ordinal, &record)?)
                .map_err(ImportError::Spool)?;
            file_entries += 1;
        } else {
            result?;
        }
    }
    let user_records = sorter.count - file_entries;
    let users = sorter.finish_reusable(st.dir).map_err(ImportError::Spool)?;
    let organizations = spool_json::<bapi::Organization>(
        &mut st,
        &inputs.organizations,
        "orgs",
        Entity::Organization,
        |o, n, at| o.check(n, at).map(Staged::Org),
    )?;
    let memberships = spool_json::<bapi::Membership>(
        &mut st,
        &inputs.memberships,
        "members",
        Entity::Membership,
        |m, n, at| m.check(n, at).map(Staged::Member),
    )?;
    let invitations = spool_json::<bapi::OrganizationInvitation>(
        &mut st,
        &inputs.invitations,
        "invites",
        Entity::Invitation,
        |i, n, at| i.check(n, at).map(Staged::Invite),
    )?;
    Ok(Staging {
        users,
        duplicates: Losses::new(),
        totals: [
            user_records,
            organizations.count,
            memberships.count,
            invitations.count,
        ],
        organizations: organizations.read().map_err(ImportError::Spool)?,
        memberships: memberships.read().map_err(ImportError::Spool)?,
        invitations: invitations.read().map_err(ImportError::Spool)?,
    })
}

/// Read one element into its wire type, then check it.
fn check<W: serde::de::DeserializeOwned, T>(
    name: &str,
    at: &str,
    raw: &RawValue,
    entity: Entity,
    then: impl FnOnce(W) -> bapi::Checked<T>,
) -> bapi::Checked<T> {
    match json_input::typed::<W>(at, raw) {
        Ok(wire) => then(wire),
        Err((path, message)) => {
            // Read the id, if any, so the problem is filed under it.
            let id = serde_json::from_str::<IdOnly>(raw.get())
                .ok()
                .and_then(|i| i.id);
            let issue = Issue::invalid(entity, id.as_deref(), Location::json(name, path), message);
            Err((id, vec![issue]))
        }
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: Option<String>,
}

fn spool_json<W: serde::de::DeserializeOwned>(
    st: &mut Stager<'_>,
    files: &[PathBuf],
    stem: &str,
    entity: Entity,
    then: impl Fn(W, &str, &str) -> bapi::Checked<Staged>,
) -> Result<Spool, ImportError> {
    let mut spool = Spool::create(st.dir, stem).map_err(ImportError::Spool)?;
    for (f, path) in files.iter().enumerate() {
        let name = display(path);
        let mut position = 0u64;
        let result = json_input::for_each_element(path, &name, |at, raw| {
            position += 1;
            let record = match check::<W, Staged>(&name, &at, raw, entity, |w| then(w, &name, &at))
            {
                Ok(record) => record,
                Err((_, issues)) => {
                    st.bad(&issues)?;
                    Staged::Bad(issues)
                }
            };
            spool
                .push(&entry("", 0, f, position, &record)?)
                .map_err(ImportError::Spool)
        });
        if let Err(ImportError::Input(message)) = result {
            let record = st.file_problem(path, message)?;
            spool
                .push(&entry("", SOURCE_FILE, f, position + 1, &record)?)
                .map_err(ImportError::Spool)?;
        } else {
            result?;
        }
    }
    Ok(spool)
}

/// A unit of the user stream: one user id's records, a bad record whose id
/// could not be read, or a problem with a whole file.
#[derive(Debug)]
pub enum UserUnit {
    Group(UserGroup),
    Orphan(Vec<Issue>),
    File(Issue),
}

/// Groups the sorted user stream by id.
pub struct Groups {
    sorted: Sorted,
    peeked: Option<(Entry, Staged)>,
}

impl Groups {
    pub fn new(sorted: Sorted) -> Groups {
        Groups {
            sorted,
            peeked: None,
        }
    }

    fn pull(&mut self) -> Result<Option<(Entry, Staged)>, ImportError> {
        if let Some(p) = self.peeked.take() {
            return Ok(Some(p));
        }
        match self.sorted.next() {
            None => Ok(None),
            Some(Err(e)) => Err(ImportError::Spool(e)),
            Some(Ok(mut e)) => {
                let staged = serde_json::from_slice(&e.body)
                    .map_err(|x| ImportError::Spool(io::Error::other(x)))?;
                e.body = Vec::new();
                Ok(Some((e, staged)))
            }
        }
    }

    pub fn next_unit(&mut self) -> Result<Option<UserUnit>, ImportError> {
        let Some((first, staged)) = self.pull()? else {
            return Ok(None);
        };
        if first.key.is_empty() {
            return Ok(Some(match staged {
                Staged::File(issue) => UserUnit::File(issue),
                Staged::Bad(issues) => UserUnit::Orphan(issues),
                _ => UserUnit::Orphan(Vec::new()),
            }));
        }
        let mut group = UserGroup {
            id: first.key.clone(),
            ..UserGroup::default()
        };
        let add = |g: &mut UserGroup, s: Staged| match s {
            Staged::Csv(c) => g.csv.push(c),
            Staged::Api(a) => g.api.push(a),
            Staged::Bad(issues) => g.bad.extend(issues),
            _ => {}
        };
        add(&mut group, staged);
        while let Some((e, s)) = self.pull()? {
            if e.key != group.id {
                self.peeked = Some((e, s));
                break;
            }
            add(&mut group, s);
        }
        Ok(Some(UserUnit::Group(group)))
    }
}
#[cfg(test)]
mod tests {
    use super::super::synth::{SynthOptions, generate};
    use super::*;

    /// A synthetic export of `users`, in pages of 700, plus one users file
    /// holding a bad element at `bad_at` among 2,000 good ones (copied from the
    /// first page, with new ids).
    fn export(dir: &Path, users: u64, bad_at: usize) -> Inputs {
        let mut synth = SynthOptions::new(users);
        synth.page_size = 700;
        let files = generate(&synth, dir).unwrap();
        let page: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&files.users[0]).unwrap()).unwrap();
        let mut extra: Vec<serde_json::Value> = (0..2000)
            .map(|i| {
                let mut u = page[i % page.len()].clone();
                u["id"] = format!("user_extra_{i:05}").into();
                u["email_addresses"] = serde_json::json!([]);
                u["primary_email_address_id"] = serde_json::Value::Null;
                u
            })
            .collect();
        extra.insert(
            bad_at,
            serde_json::json!({"id": "user_bad", "created_at": "yesterday"}),
        );
        let extra_file = dir.join("users-extra.json");
        std::fs::write(&extra_file, serde_json::to_vec(&extra).unwrap()).unwrap();
        let mut users = files.users.clone();
        users.insert(1, extra_file);
        Inputs {
            csv: vec![files.csv],
            users,
            ..Inputs::default()
        }
    }

    fn records(inputs: &Inputs) -> u64 {
        let mut n = 0;
        for csv in &inputs.csv {
            let mut export = CsvExport::open(csv, "csv").unwrap();
            while export.next_row().is_some() {
                n += 1;
            }
        }
        for users in &inputs.users {
            n += json_input::for_each_element(users, "u", |_, _| Ok(())).unwrap();
        }
        n
    }

    /// Every record is staged once and comes out sorted by id, bad ones as
    /// issues under their id.
    #[test]
    fn every_record_is_staged_once() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = export(dir.path(), 2000, 1500);
        let mut work = WorkDir::create(&dir.path().join("work")).unwrap();
        // A small budget: several runs on disk.
        let staging = stage(&inputs, &mut work, 1 << 16, false).unwrap();
        assert_eq!(staging.totals[0], records(&inputs));
        let mut groups = Groups::new(staging.users.read().unwrap());
        let (mut ids, mut bad) = (0, 0);
        let mut last = String::new();
        while let Some(unit) = groups.next_unit().unwrap() {
            if let UserUnit::Group(g) = unit {
                assert!(g.id > last, "{} after {last}", g.id);
                if g.id == "user_bad" {
                    bad += g.bad.len();
                }
                last = g.id;
                ids += 1;
            }
        }
        assert_eq!(
            ids,
            2000 + 2000 + 1,
            "synthetic users, extra ones, the bad one"
        );
        assert_eq!(bad, 1);
    }

    /// Under `--strict` the first bad record stops staging with its own
    /// error (its file and JSON path), thousands of records before the end.
    #[test]
    fn strict_stops_at_the_first_bad_record_with_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = export(dir.path(), 1000, 1200);
        let mut work = WorkDir::create(&dir.path().join("work")).unwrap();
        let err = match stage(&inputs, &mut work, 64 << 20, true) {
            Err(ImportError::Strict(issue)) => issue,
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("staged a bad record under --strict"),
        };
        let text = format!("{err:?}");
        assert!(text.contains("users-extra.json"), "{text}");
        assert!(text.contains("$[1200]"), "{text}");
    }
}
