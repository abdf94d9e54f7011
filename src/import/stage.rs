//! Phase one: read and check every input, before anything is written.
//!
//! Users (CSV rows and API objects) go into the external sort by id;
//! organizations, memberships and invitations into spools in input order. Bad
//! records travel along as issues under their id, so they are recorded with the
//! batch that holds that id — exactly once, even across a resume. With
//! `strict`, the first bad record stops the run here, before any write.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::mpsc::{SyncSender, sync_channel};

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
use super::spool::{Chunk, Entry, Sorted, SortedRuns, Sorter, Spool, SpoolReader, WorkDir};

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
#[derive(Debug, PartialEq, Serialize, Deserialize)]
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

/// The first byte of a record's body in the temporary files: what follows is
/// postcard (records: compact, with no field names to parse; reading JSON
/// bodies back was 19 % of staging 1,000,000 users), or JSON (problems:
/// `Issue` leaves out empty fields, which a format without field names cannot
/// do).
const BODY_POSTCARD: u8 = b'P';
const BODY_JSON: u8 = b'J';

impl Staged {
    /// Append the record's body for the temporary files to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Staged::Bad(_) | Staged::File(_) => {
                out.push(BODY_JSON);
                serde_json::to_writer(&mut *out, self).map_err(io::Error::other)
            }
            _ => {
                out.push(BODY_POSTCARD);
                let buf =
                    postcard::to_extend(self, std::mem::take(out)).map_err(io::Error::other)?;
                *out = buf;
                Ok(())
            }
        }
    }

    /// Read a body [`Staged::encode_into`] wrote.
    pub fn decode(body: &[u8]) -> io::Result<Staged> {
        let damaged = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
        match body.split_first() {
            Some((&BODY_POSTCARD, rest)) => {
                postcard::from_bytes(rest).map_err(|e| damaged(e.to_string()))
            }
            Some((&BODY_JSON, rest)) => {
                serde_json::from_slice(rest).map_err(|e| damaged(e.to_string()))
            }
            _ => Err(damaged("a record of unknown form".into())),
        }
    }
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

/// A bad record: stop under `strict`, else keep it for the report.
fn bad(strict: bool, issues: &[Issue]) -> Result<(), ImportError> {
    match (strict, issues.first()) {
        (true, Some(first)) => Err(ImportError::Strict(Box::new(first.clone()))),
        _ => Ok(()),
    }
}

fn file_problem(strict: bool, file: &Path, message: String) -> Result<Staged, ImportError> {
    let issue = Issue::invalid(Entity::File, None, Location::file(&display(file)), message);
    bad(strict, std::slice::from_ref(&issue))?;
    Ok(Staged::File(issue))
}

fn entry(
    key: &str,
    source: u8,
    file: usize,
    position: u64,
    record: &Staged,
) -> Result<Entry, ImportError> {
    let mut body = Vec::new();
    record.encode_into(&mut body).map_err(ImportError::Spool)?;
    Ok(Entry {
        key: key.to_string(),
        source,
        file: file as u32,
        position,
        body,
    })
}

/// Threads that read user files at once, besides the one sorting what they
/// read: one per core, at most four.
fn readers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Read every input. `sort_budget` bounds the memory the user sort may hold.
pub fn stage(
    inputs: &Inputs,
    dir: &mut WorkDir,
    sort_budget: usize,
    strict: bool,
) -> Result<Staging, ImportError> {
    stage_with(inputs, dir, sort_budget, strict, readers())
}

fn stage_with(
    inputs: &Inputs,
    dir: &mut WorkDir,
    sort_budget: usize,
    strict: bool,
    readers: usize,
) -> Result<Staging, ImportError> {
    let (users, user_records) = stage_users(inputs, dir, sort_budget, strict, readers)?;
    let organizations = spool_json::<bapi::Organization>(
        dir,
        strict,
        &inputs.organizations,
        "orgs",
        Entity::Organization,
        |o, n, at| o.check(n, at).map(Staged::Org),
    )?;
    let memberships = spool_json::<bapi::Membership>(
        dir,
        strict,
        &inputs.memberships,
        "members",
        Entity::Membership,
        |m, n, at| m.check(n, at).map(Staged::Member),
    )?;
    let invitations = spool_json::<bapi::OrganizationInvitation>(
        dir,
        strict,
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

/// A file of user records: the CSV exports come first, then the API pages;
/// its index among them is the `file` of its entries.
#[derive(Clone, Copy)]
enum UserFile<'a> {
    Csv(&'a Path),
    Api(&'a Path),
}

/// Entries per [`Chunk`].
const CHUNK: usize = 512;

/// What stops the readers: the first failure in input order (a bad record
/// under `strict`, a file that cannot be read), or the sorter's own error.
///
/// Files are read several at once, so a later file may fail first. A reader
/// stops at a failure in its own file, and skips or leaves a file only once a
/// failure in an *earlier* file is known, so the failure kept is the one that
/// reading the files one after another would have met.
struct Failures {
    /// The index of the earliest file with a failure (`u64::MAX`: none).
    earliest: AtomicU64,
    /// Every reader stops at once (the sorter failed).
    abort: AtomicBool,
    first: Mutex<Option<(usize, u64, ImportError)>>,
}

impl Failures {
    fn new() -> Failures {
        Failures {
            earliest: AtomicU64::new(u64::MAX),
            abort: AtomicBool::new(false),
            first: Mutex::new(None),
        }
    }

    /// Whether records of `file` can no longer matter.
    fn stops(&self, file: usize) -> bool {
        self.abort.load(AtomicOrdering::Relaxed)
            || self.earliest.load(AtomicOrdering::Relaxed) < file as u64
    }

    fn record(&self, file: usize, position: u64, error: ImportError) {
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first
            .as_ref()
            .is_none_or(|(f, p, _)| (file, position) < (*f, *p))
        {
            *first = Some((file, position, error));
            self.earliest
                .fetch_min(file as u64, AtomicOrdering::Relaxed);
        }
    }

    fn take(self) -> Option<ImportError> {
        self.first
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .map(|(_, _, e)| e)
    }
}

/// What one reader hands to the sorter, a chunk at a time, with how many of
/// its entries are about a whole file, not user records.
struct Out<'a> {
    chunk: Chunk,
    file_entries: u64,
    file: usize,
    to: &'a SyncSender<(Chunk, u64)>,
}

impl Out<'_> {
    /// Add an entry of this file (`about_file`: a problem with the whole
    /// file, not a record); `Ok(false)` once the sorter has stopped listening.
    fn push(
        &mut self,
        key: &str,
        source: u8,
        position: u64,
        record: &Staged,
        about_file: bool,
    ) -> Result<bool, ImportError> {
        self.chunk
            .push(key, source, self.file as u32, position, |body| {
                record.encode_into(body)
            })
            .map_err(ImportError::Spool)?;
        self.file_entries += u64::from(about_file);
        Ok(self.chunk.len() < CHUNK || self.flush())
    }

    fn flush(&mut self) -> bool {
        if self.chunk.is_empty() {
            return true;
        }
        let full = std::mem::replace(&mut self.chunk, Chunk::with_capacity(CHUNK, CHUNK * 512));
        let file_entries = std::mem::take(&mut self.file_entries);
        self.to.send((full, file_entries)).is_ok()
    }
}

/// A reader's result for one file: `Err` names the position of the failure.
type Read = Result<(), (u64, ImportError)>;

/// Read and check every user record into the sort by id, `readers` files at
/// once; the sorted records and how many there are (user records, not
/// problems with whole files).
fn stage_users(
    inputs: &Inputs,
    dir: &mut WorkDir,
    sort_budget: usize,
    strict: bool,
    readers: usize,
) -> Result<(SortedRuns, u64), ImportError> {
    let files: Vec<UserFile<'_>> = inputs
        .csv
        .iter()
        .map(|p| UserFile::Csv(p))
        .chain(inputs.users.iter().map(|p| UserFile::Api(p)))
        .collect();
    let mut sorter = Sorter::new(sort_budget);
    let mut file_entries = 0u64;
    let failures = Failures::new();
    let next = AtomicUsize::new(0);
    let mut sort_error = None;
    std::thread::scope(|s| {
        let (to, from) = sync_channel::<(Chunk, u64)>(2 * readers.max(1));
        for _ in 0..readers.max(1) {
            let to = to.clone();
            let (files, failures, next) = (&files, &failures, &next);
            s.spawn(move || {
                loop {
                    let f = next.fetch_add(1, AtomicOrdering::Relaxed);
                    let Some(file) = files.get(f) else { break };
                    if failures.stops(f) {
                        break;
                    }
                    let mut out = Out {
                        chunk: Chunk::with_capacity(CHUNK, CHUNK * 512),
                        file_entries: 0,
                        file: f,
                        to: &to,
                    };
                    let read = match *file {
                        UserFile::Csv(path) => read_csv(path, f, strict, failures, &mut out),
                        UserFile::Api(path) => read_api(path, f, strict, failures, &mut out),
                    };
                    if let Err((position, error)) = read {
                        failures.record(f, position, error);
                    }
                    if !out.flush() {
                        break;
                    }
                }
            });
        }
        drop(to);
        for (chunk, about_files) in from {
            if sort_error.is_some() {
                continue; // let the readers finish
            }
            file_entries += about_files;
            for e in chunk.into_entries() {
                if let Err(e) = e.and_then(|e| sorter.push(dir, e)) {
                    failures.abort.store(true, AtomicOrdering::Relaxed);
                    sort_error = Some(e);
                    break;
                }
            }
        }
    });
    if let Some(e) = sort_error {
        return Err(ImportError::Spool(e));
    }
    if let Some(e) = failures.take() {
        return Err(e);
    }
    let user_records = sorter.count - file_entries;
    let users = sorter.finish_reusable(dir).map_err(ImportError::Spool)?;
    Ok((users, user_records))
}

/// Read one CSV export.
fn read_csv(path: &Path, f: usize, strict: bool, failures: &Failures, out: &mut Out<'_>) -> Read {
    let name = display(path);
    let at = |position: u64| move |e: ImportError| (position, e);
    let mut export = CsvExport::open(path, &name).map_err(at(0))?;
    let mut position = 0u64;
    for column in &export.missing_columns {
        let issue = Issue::new(
            IssueKind::Warning,
            Entity::File,
            None,
            format!("no `{column}` column: read as empty"),
        )
        .at(Location::file(&name));
        let record = Staged::File(issue);
        if !out
            .push("", SOURCE_FILE, position, &record, true)
            .map_err(at(position))?
        {
            return Ok(());
        }
        position += 1;
    }
    while let Some(row) = export.next_row() {
        if failures.stops(f) {
            return Ok(());
        }
        position += 1;
        let (key, source, record) = match row {
            Ok(CsvRow::User(u)) => (u.id.clone(), SOURCE_CSV, Staged::Csv(*u)),
            Ok(CsvRow::Bad { id, issues }) => {
                bad(strict, &issues).map_err(at(position))?;
                (id.unwrap_or_default(), SOURCE_BAD, Staged::Bad(issues))
            }
            Err(ImportError::Input(message)) => {
                let record = file_problem(
                    strict,
                    path,
                    format!("{message}; the rest of the file was not read"),
                )
                .map_err(at(position))?;
                out.push("", SOURCE_FILE, position, &record, true)
                    .map_err(at(position))?;
                return Ok(());
            }
            Err(e) => return Err((position, e)),
        };
        if !out
            .push(&key, source, position, &record, false)
            .map_err(at(position))?
        {
            return Ok(());
        }
    }
    Ok(())
}

/// Read one file of Backend API users.
fn read_api(path: &Path, f: usize, strict: bool, failures: &Failures, out: &mut Out<'_>) -> Read {
    let name = display(path);
    let mut position = 0u64;
    // Set when reading stops early (a failure in an earlier file, or the
    // sorter stopped): not a problem with this file.
    let mut left = false;
    let result = json_input::for_each_element(path, &name, |at, raw| {
        if failures.stops(f) {
            left = true;
            return Err(ImportError::Internal(String::new()));
        }
        position += 1;
        let (key, source, record) =
            match check::<bapi::User, _>(&name, &at, raw, Entity::User, |u| u.check(&name, &at)) {
                Ok(u) => (u.id.clone(), SOURCE_API, Staged::Api(u)),
                Err((id, issues)) => {
                    bad(strict, &issues)?;
                    (id.unwrap_or_default(), SOURCE_BAD, Staged::Bad(issues))
                }
            };
        if !out.push(&key, source, position, &record, false)? {
            left = true;
            return Err(ImportError::Internal(String::new()));
        }
        Ok(())
    });
    match result {
        Ok(_) => Ok(()),
        Err(_) if left => Ok(()),
        Err(ImportError::Input(message)) => {
            position += 1;
            let record = file_problem(strict, path, message).map_err(|e| (position, e))?;
            out.push("", SOURCE_FILE, position, &record, true)
                .map_err(|e| (position, e))?;
            Ok(())
        }
        Err(e) => Err((position, e)),
    }
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
    dir: &mut WorkDir,
    strict: bool,
    files: &[PathBuf],
    stem: &str,
    entity: Entity,
    then: impl Fn(W, &str, &str) -> bapi::Checked<Staged>,
) -> Result<Spool, ImportError> {
    let mut spool = Spool::create(dir, stem).map_err(ImportError::Spool)?;
    for (f, path) in files.iter().enumerate() {
        let name = display(path);
        let mut position = 0u64;
        let result = json_input::for_each_element(path, &name, |at, raw| {
            position += 1;
            let record = match check::<W, Staged>(&name, &at, raw, entity, |w| then(w, &name, &at))
            {
                Ok(record) => record,
                Err((_, issues)) => {
                    bad(strict, &issues)?;
                    Staged::Bad(issues)
                }
            };
            spool
                .push(&entry("", 0, f, position, &record)?)
                .map_err(ImportError::Spool)
        });
        if let Err(ImportError::Input(message)) = result {
            let record = file_problem(strict, path, message)?;
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
                let staged = Staged::decode(&e.body).map_err(ImportError::Spool)?;
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

    /// Every kind of record reads back as written, problems included (their
    /// empty fields left out, which postcard alone could not read back); a
    /// damaged body is an error, not a guess.
    #[test]
    fn records_read_back_from_their_bodies_as_written() {
        let issue = Issue::invalid(
            Entity::User,
            Some("user_1"),
            Location::json("users.json", "$[3].created_at"),
            "not a time",
        );
        let api = ApiUser {
            id: "user_2".into(),
            primary_email: Some(crate::import::records::Identifier {
                value: "a@example.com".into(),
                verified: true,
            }),
            other_emails: vec!["b@example.com".into()],
            created_at: Some(-5),
            password_enabled: Some(false),
            path: "$[0]".into(),
            ..ApiUser::default()
        };
        let csv = CsvUser {
            id: "user_3".into(),
            username: Some("Ann".into()),
            digest: Some(crate::import::sensitive::Sensitive::new("$2b$10$x")),
            line: 7,
            ..CsvUser::default()
        };
        let records = [
            Staged::Csv(csv),
            Staged::Api(api),
            Staged::Bad(vec![
                issue.clone(),
                Issue::new(IssueKind::Warning, Entity::File, None, "w"),
            ]),
            Staged::File(issue),
        ];
        for r in &records {
            let mut body = b"left alone".to_vec();
            r.encode_into(&mut body).unwrap();
            let back = Staged::decode(&body[b"left alone".len()..]).unwrap();
            assert_eq!(&back, r);
        }
        let mut body = Vec::new();
        records[1].encode_into(&mut body).unwrap();
        assert!(Staged::decode(&body[..body.len() / 2]).is_err());
        assert!(Staged::decode(b"").is_err());
        assert!(Staged::decode(b"X{}").is_err());
    }

    /// An element that is not JSON makes the file malformed there, whether
    /// or not its fields would have read: a problem with the file naming its
    /// line and column, the elements before it staged and none after; never a
    /// bad record.
    #[test]
    fn an_element_that_is_not_json_is_the_file_s_problem_not_a_bad_record() {
        let dir = tempfile::tempdir().unwrap();
        let good = r#"{"id":"user_1","email_addresses":[],"created_at":1700000000000,"updated_at":1700000000000}"#;
        for (bad, col) in [
            // A field of the wrong type, then broken JSON.
            (r#"{"id":"user_2","created_at":"x","updated_at":tru}"#, 49),
            // Fields that would read, then broken JSON.
            (
                r#"{"id":"user_2","email_addresses":[],"created_at":1,"updated_at":1,"x":[1,}"#,
                74,
            ),
            // A string with a raw control character.
            ("{\"id\":\"user_\u{1}2\"}", 12),
        ] {
            let path = dir.path().join("users.json");
            std::fs::write(&path, format!("[\n{good},\n{bad},\n{good}\n]")).unwrap();
            let inputs = Inputs {
                users: vec![path],
                ..Inputs::default()
            };
            for strict in [false, true] {
                let mut work = WorkDir::create(&dir.path().join("work")).unwrap();
                let result = stage_with(&inputs, &mut work, 64 << 20, strict, 2);
                let problem = if strict {
                    strict_issue(result)
                } else {
                    let staging = result.unwrap();
                    assert_eq!(staging.totals[0], 1, "only the element before it");
                    let mut groups = Groups::new(staging.users.read().unwrap());
                    let mut files = Vec::new();
                    while let Some(unit) = groups.next_unit().unwrap() {
                        match unit {
                            UserUnit::File(issue) => files.push(issue),
                            UserUnit::Group(g) => {
                                assert_eq!(g.id, "user_1");
                                assert!(g.bad.is_empty(), "{:?}", g.bad);
                            }
                            UserUnit::Orphan(o) => panic!("{o:?}"),
                        }
                    }
                    assert_eq!(files.len(), 1);
                    files.remove(0)
                };
                assert_eq!(problem.entity, Entity::File);
                assert!(
                    problem.message.contains(&format!("users.json:3:{col}:")),
                    "{}",
                    problem.message
                );
                assert!(
                    problem.message.contains("(1 element(s) read before it)"),
                    "{}",
                    problem.message
                );
            }
        }
    }

    /// The issue a `--strict` staging stopped at.
    fn strict_issue(result: Result<Staging, ImportError>) -> Issue {
        match result {
            Err(ImportError::Strict(issue)) => *issue,
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("staged a bad record under --strict"),
        }
    }

    /// Every entry of the sorted stream, whole.
    fn entries(staging: &Staging) -> Vec<Entry> {
        staging.users.read().unwrap().map(Result::unwrap).collect()
    }

    /// Reading several files at once stages exactly what reading them one
    /// after another does: the same entries (keys, files, positions, bodies)
    /// in the same order, with the same totals, through spilled runs.
    #[test]
    fn several_readers_stage_what_one_does() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = export(dir.path(), 3000, 700);
        let mut staged = Vec::new();
        for readers in [1, 3] {
            let mut work = WorkDir::create(&dir.path().join("work")).unwrap();
            let staging = stage_with(&inputs, &mut work, 1 << 16, false, readers).unwrap();
            staged.push((staging.totals, entries(&staging)));
        }
        assert_eq!(staged[0].0, staged[1].0);
        assert_eq!(staged[0].1.len(), staged[1].1.len());
        assert!(staged[0].1 == staged[1].1, "the sorted entries differ");
        assert_eq!(staged[0].0[0], records(&inputs));
        assert_eq!(
            staged[0].1.len() as u64,
            records(&inputs),
            "no file problems"
        );
    }

    /// Files are read several at once, so a later file's bad record is often
    /// met first; `--strict` still reports the first one in input order.
    #[test]
    fn strict_reports_the_first_bad_record_in_input_order_whichever_is_met_first() {
        let dir = tempfile::tempdir().unwrap();
        let good = |i: usize| {
            serde_json::json!({
                "id": format!("user_{i:05}"),
                "email_addresses": [],
                "created_at": 1_700_000_000_000i64 + i as i64,
                "updated_at": 1_700_000_000_000i64 + i as i64,
            })
        };
        let mut long: Vec<serde_json::Value> = (0..20_000).map(good).collect();
        long.push(serde_json::json!({"id": "user_late", "created_at": "yesterday"}));
        let short = vec![serde_json::json!({"id": "user_early", "created_at": "today"})];
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        std::fs::write(&a, serde_json::to_vec(&long).unwrap()).unwrap();
        std::fs::write(&b, serde_json::to_vec(&short).unwrap()).unwrap();
        let inputs = Inputs {
            users: vec![a, b],
            ..Inputs::default()
        };
        for _ in 0..5 {
            let mut work = WorkDir::create(&dir.path().join("work")).unwrap();
            let err = strict_issue(stage_with(&inputs, &mut work, 64 << 20, true, 2));
            let text = format!("{err:?}");
            assert!(text.contains("a.json"), "{text}");
            assert!(text.contains("$[20000]"), "{text}");
        }
    }

    /// Under `--strict` the first bad record stops staging with its own
    /// error (its file and JSON path), thousands of records before the end.
    #[test]
    fn strict_stops_at_the_first_bad_record_with_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = export(dir.path(), 1000, 1200);
        let mut work = WorkDir::create(&dir.path().join("work")).unwrap();
        let err = strict_issue(stage(&inputs, &mut work, 64 << 20, true));
        let text = format!("{err:?}");
        assert!(text.contains("users-extra.json"), "{text}");
        assert!(text.contains("$[1200]"), "{text}");
    }
}
