//! Temporary files: an external sort for users, plain spools for the rest.
//!
//! CSV rows and API users have to be joined by id, and neither input is sorted
//! by id, nor small enough to hold in memory in general. So every user record
//! goes through an external merge sort keyed by (id, source, file, position):
//! records are buffered up to a byte budget, sorted, written out as a run, and
//! the runs are merged with a heap. Memory is the budget plus one record per
//! run, whatever the export's size. The sorted order also makes the import's
//! progress a single number: how many user ids have been committed.
//!
//! Organizations, memberships and invitations need no join; they are spooled in
//! input order so that all input is checked before anything is written.
//!
//! The files hold digests and TOTP secrets, so they live in a directory only the
//! owner can read, are removed when the run ends, and leftovers of a killed run
//! are removed by the next one.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// One record in a temporary file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The sort key: a user id (empty for records that have none).
    pub key: String,
    /// Which source, so that one id's records come out in a fixed order.
    pub source: u8,
    pub file: u32,
    pub position: u64,
    /// The record (`stage::Staged::encode_into`; opaque here).
    pub body: Vec<u8>,
}

impl Entry {
    fn size(&self) -> usize {
        self.key.len() + self.body.len() + 64
    }

    fn order(&self, other: &Entry) -> Ordering {
        (&self.key, self.source, self.file, self.position).cmp(&(
            &other.key,
            other.source,
            other.file,
            other.position,
        ))
    }

    fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&(self.key.len() as u32).to_le_bytes())?;
        w.write_all(self.key.as_bytes())?;
        w.write_all(&[self.source])?;
        w.write_all(&self.file.to_le_bytes())?;
        w.write_all(&self.position.to_le_bytes())?;
        w.write_all(&(self.body.len() as u32).to_le_bytes())?;
        w.write_all(&self.body)
    }

    fn read_from(r: &mut impl Read) -> io::Result<Option<Entry>> {
        let mut len = [0u8; 4];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut key = vec![0u8; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut key)?;
        let mut fixed = [0u8; 1 + 4 + 8 + 4];
        r.read_exact(&mut fixed)?;
        let mut body =
            vec![0u8; u32::from_le_bytes([fixed[13], fixed[14], fixed[15], fixed[16]]) as usize];
        r.read_exact(&mut body)?;
        Ok(Some(Entry {
            key: String::from_utf8(key)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            source: fixed[0],
            file: u32::from_le_bytes([fixed[1], fixed[2], fixed[3], fixed[4]]),
            position: u64::from_le_bytes(fixed[5..13].try_into().unwrap_or([0; 8])),
            body,
        }))
    }
}

/// Entries made on one thread for another to sort: their keys and bodies one
/// after another in one buffer. The sorting thread makes each entry's own
/// copy ([`Chunk::into_entries`]), so that what the sort holds is allocated by
/// that thread alone. (glibc keeps what a thread frees in the arena of the
/// thread that allocated it: entries allocated on a reading thread and freed by
/// the sort leave every reader's arena as large as the sort's budget, and the
/// frees across arenas were a third of the duplicate pass's time.) The copies
/// also take no more room than they need.
#[derive(Debug, Default)]
pub struct Chunk {
    bytes: Vec<u8>,
    slots: Vec<Slot>,
}

#[derive(Debug)]
struct Slot {
    key_len: u32,
    body_len: u32,
    source: u8,
    file: u32,
    position: u64,
}

impl Chunk {
    /// Room for `entries` entries of `bytes` bytes (keys and bodies) in all.
    pub fn with_capacity(entries: usize, bytes: usize) -> Chunk {
        Chunk {
            bytes: Vec::with_capacity(bytes),
            slots: Vec::with_capacity(entries),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Add an entry whose body `body` appends to the buffer it is given.
    pub fn push(
        &mut self,
        key: &str,
        source: u8,
        file: u32,
        position: u64,
        body: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key.as_bytes());
        if let Err(e) = body(&mut self.bytes) {
            self.bytes.truncate(start);
            return Err(e);
        }
        let too_long = |_| io::Error::other("an entry of 4 GiB or more");
        self.slots.push(Slot {
            key_len: u32::try_from(key.len()).map_err(too_long)?,
            body_len: u32::try_from(self.bytes.len() - start - key.len()).map_err(too_long)?,
            source,
            file,
            position,
        });
        Ok(())
    }

    /// The entries, each in allocations of the calling thread's own.
    pub fn into_entries(self) -> impl Iterator<Item = io::Result<Entry>> {
        let mut at = 0usize;
        let bytes = self.bytes;
        self.slots.into_iter().map(move |slot| {
            let (k, b) = (slot.key_len as usize, slot.body_len as usize);
            let key = bytes.get(at..at + k);
            let body = bytes.get(at + k..at + k + b);
            at += k + b;
            let (Some(key), Some(body)) = (key, body) else {
                return Err(io::Error::other("a chunk shorter than its entries"));
            };
            Ok(Entry {
                key: std::str::from_utf8(key)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
                    .to_owned(),
                source: slot.source,
                file: slot.file,
                position: slot.position,
                body: body.to_vec(),
            })
        })
    }
}

/// The run's private directory of temporary files, removed on drop.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    next: u32,
}

impl WorkDir {
    /// Create `<base>/cutover-import-<pid>-<n>`, readable by the owner only,
    /// after removing the directories of earlier runs whose process is gone.
    /// `<n>` tells apart several runs in one process (tests run them side by side).
    pub fn create(base: &Path) -> io::Result<WorkDir> {
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        fs::create_dir_all(base)?;
        remove_stale(base);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = base.join(format!("cutover-import-{}-{n}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path)?;
        }
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path)?;
        Ok(WorkDir { path, next: 0 })
    }

    fn new_file(&mut self, stem: &str) -> io::Result<(PathBuf, File)> {
        self.next += 1;
        let path = self.path.join(format!("{stem}-{:04}", self.next));
        let mut options = fs::OpenOptions::new();
        options.write(true).read(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path)?;
        Ok((path, file))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Remove `cutover-import-<pid>[-<n>]` directories left by processes that no longer
/// run (a killed import). Only where `/proc` tells which processes run.
fn remove_stale(base: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("cutover-import-"))
            .and_then(|p| p.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Collects entries and hands them back sorted.
pub struct Sorter {
    buffer: Vec<Entry>,
    buffered: usize,
    budget: usize,
    runs: Vec<PathBuf>,
    pub count: u64,
}

impl Sorter {
    /// `budget`: bytes of records held in memory before a run is written.
    pub fn new(budget: usize) -> Sorter {
        Sorter {
            buffer: Vec::new(),
            buffered: 0,
            budget: budget.max(1 << 16),
            runs: Vec::new(),
            count: 0,
        }
    }

    pub fn push(&mut self, dir: &mut WorkDir, entry: Entry) -> io::Result<()> {
        self.buffered += entry.size();
        self.buffer.push(entry);
        self.count += 1;
        if self.buffered >= self.budget {
            self.spill(dir)?;
        }
        Ok(())
    }

    fn spill(&mut self, dir: &mut WorkDir) -> io::Result<()> {
        self.buffer.sort_unstable_by(Entry::order);
        let (path, file) = dir.new_file("run")?;
        let mut w = BufWriter::with_capacity(1 << 16, file);
        for e in self.buffer.drain(..) {
            e.write_to(&mut w)?;
        }
        w.flush()?;
        self.runs.push(path);
        self.buffered = 0;
        Ok(())
    }

    /// Every entry pushed, in order.
    pub fn finish(self, dir: &mut WorkDir) -> io::Result<Sorted> {
        self.finish_reusable(dir)?.read()
    }

    /// Every entry pushed, sorted, to be read in order as many times as
    /// needed (the import reads its users twice: once to settle duplicate
    /// identifiers, once to write).
    pub fn finish_reusable(mut self, dir: &mut WorkDir) -> io::Result<SortedRuns> {
        if self.runs.is_empty() {
            self.buffer.sort_unstable_by(Entry::order);
            return Ok(SortedRuns {
                memory: Some(std::sync::Arc::new(std::mem::take(&mut self.buffer))),
                runs: Vec::new(),
            });
        }
        if !self.buffer.is_empty() {
            self.spill(dir)?;
        }
        Ok(SortedRuns {
            memory: None,
            runs: std::mem::take(&mut self.runs),
        })
    }
}

/// Sorted entries that can be read more than once: held in memory when they
/// fitted the budget, else sorted runs on disk merged on each read.
pub struct SortedRuns {
    memory: Option<std::sync::Arc<Vec<Entry>>>,
    runs: Vec<PathBuf>,
}

impl SortedRuns {
    /// A new pass over every entry, in order.
    pub fn read(&self) -> io::Result<Sorted> {
        if let Some(entries) = &self.memory {
            return Ok(Sorted(SortedFrom::Memory(entries.clone(), 0)));
        }
        let mut readers = Vec::with_capacity(self.runs.len());
        let mut heap = BinaryHeap::new();
        for (i, path) in self.runs.iter().enumerate() {
            let mut r = BufReader::with_capacity(1 << 15, File::open(path)?);
            if let Some(e) = Entry::read_from(&mut r)? {
                heap.push(Reverse(Head(e, i)));
            }
            readers.push(r);
        }
        Ok(Sorted(SortedFrom::Merge { readers, heap }))
    }
}

struct Head(Entry, usize);

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.order(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Sorted entries: from memory when they fitted, else merged from the runs.
pub struct Sorted(SortedFrom);

enum SortedFrom {
    /// The entries and the next index.
    Memory(std::sync::Arc<Vec<Entry>>, usize),
    Merge {
        readers: Vec<BufReader<File>>,
        heap: BinaryHeap<Reverse<Head>>,
    },
}

impl Iterator for Sorted {
    type Item = io::Result<Entry>;

    fn next(&mut self) -> Option<io::Result<Entry>> {
        match &mut self.0 {
            SortedFrom::Memory(entries, next) => {
                let e = entries.get(*next)?.clone();
                *next += 1;
                Some(Ok(e))
            }
            SortedFrom::Merge { readers, heap } => {
                let Reverse(Head(entry, i)) = heap.pop()?;
                match Entry::read_from(&mut readers[i]) {
                    Ok(Some(next)) => heap.push(Reverse(Head(next, i))),
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                }
                Some(Ok(entry))
            }
        }
    }
}

/// Entries written in order and read back in the same order.
pub struct Spool {
    writer: Option<BufWriter<File>>,
    path: PathBuf,
    pub count: u64,
}

impl Spool {
    pub fn create(dir: &mut WorkDir, stem: &str) -> io::Result<Spool> {
        let (path, file) = dir.new_file(stem)?;
        Ok(Spool {
            writer: Some(BufWriter::with_capacity(1 << 16, file)),
            path,
            count: 0,
        })
    }

    pub fn push(&mut self, entry: &Entry) -> io::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            entry.write_to(w)?;
        }
        self.count += 1;
        Ok(())
    }

    /// Close for writing and read the entries back.
    pub fn read(mut self) -> io::Result<SpoolReader> {
        if let Some(mut w) = self.writer.take() {
            w.flush()?;
        }
        Ok(SpoolReader(BufReader::with_capacity(
            1 << 16,
            File::open(&self.path)?,
        )))
    }
}

pub struct SpoolReader(BufReader<File>);

impl Iterator for SpoolReader {
    type Item = io::Result<Entry>;

    fn next(&mut self) -> Option<io::Result<Entry>> {
        Entry::read_from(&mut self.0).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, source: u8, position: u64) -> Entry {
        Entry {
            key: key.into(),
            source,
            file: 0,
            position,
            body: format!("{{\"k\":\"{key}\"}}").into_bytes(),
        }
    }

    #[test]
    fn sorts_in_memory_and_through_runs_alike() {
        let base = tempfile::tempdir().unwrap();
        let keys: Vec<String> = (0..5000)
            .map(|i| format!("user_{:05}", (i * 7919) % 5000))
            .collect();
        for budget in [usize::MAX, 1 << 16] {
            let mut dir = WorkDir::create(base.path()).unwrap();
            let mut s = Sorter::new(budget);
            for (i, k) in keys.iter().enumerate() {
                s.push(&mut dir, entry(k, (i % 2) as u8, i as u64)).unwrap();
            }
            let out: Vec<Entry> = s.finish(&mut dir).unwrap().map(Result::unwrap).collect();
            assert_eq!(out.len(), 5000);
            assert!(
                out.windows(2)
                    .all(|w| w[0].order(&w[1]) != Ordering::Greater)
            );
            assert_eq!(out[0].key, "user_00000");
        }
    }

    /// A chunk gives back its entries as pushed; a body that fails to write
    /// leaves nothing of that entry behind.
    #[test]
    fn chunks_give_back_what_was_pushed() {
        let mut chunk = Chunk::with_capacity(2, 16);
        for i in 0..700u64 {
            let key = if i.is_multiple_of(3) {
                String::new()
            } else {
                format!("user_é{i}")
            };
            chunk
                .push(&key, (i % 4) as u8, i as u32 / 10, i, |b| {
                    b.extend(std::iter::repeat_n(i as u8, (i % 50) as usize));
                    Ok(())
                })
                .unwrap();
            if i == 5 {
                let failed = chunk.push("user_x", 9, 9, 9, |b| {
                    b.extend_from_slice(b"half");
                    Err(io::Error::other("no"))
                });
                assert!(failed.is_err());
            }
        }
        assert_eq!(chunk.len(), 700);
        let back: Vec<Entry> = chunk.into_entries().map(Result::unwrap).collect();
        for (i, e) in back.iter().enumerate() {
            let i = i as u64;
            let key = if i.is_multiple_of(3) {
                String::new()
            } else {
                format!("user_é{i}")
            };
            assert_eq!(e.key, key);
            assert_eq!(
                (e.source, e.file, e.position),
                ((i % 4) as u8, i as u32 / 10, i)
            );
            assert_eq!(e.body, vec![i as u8; (i % 50) as usize]);
        }
    }

    #[test]
    fn sorted_runs_read_alike_twice() {
        let base = tempfile::tempdir().unwrap();
        for budget in [usize::MAX, 1 << 16] {
            let mut dir = WorkDir::create(base.path()).unwrap();
            let mut s = Sorter::new(budget);
            for i in 0..3000u64 {
                s.push(&mut dir, entry(&format!("k{:05}", (i * 7) % 3000), 0, i))
                    .unwrap();
            }
            let runs = s.finish_reusable(&mut dir).unwrap();
            let keys = |r: &SortedRuns| -> Vec<String> {
                r.read().unwrap().map(|e| e.unwrap().key).collect()
            };
            let first = keys(&runs);
            assert_eq!(first.len(), 3000);
            assert!(first.windows(2).all(|w| w[0] <= w[1]));
            assert_eq!(keys(&runs), first);
        }
    }

    #[test]
    fn spools_keep_order_and_the_directory_goes_away() {
        let base = tempfile::tempdir().unwrap();
        let path;
        {
            let mut dir = WorkDir::create(base.path()).unwrap();
            path = dir.path.clone();
            let mut spool = Spool::create(&mut dir, "orgs").unwrap();
            for i in 0..100 {
                spool.push(&entry("", 0, i)).unwrap();
            }
            let back: Vec<u64> = spool.read().unwrap().map(|e| e.unwrap().position).collect();
            assert_eq!(back, (0..100).collect::<Vec<_>>());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                assert_eq!(
                    fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                    0o700
                );
            }
        }
        assert!(!path.exists());
    }

    #[test]
    fn directories_of_dead_runs_are_removed() {
        let base = tempfile::tempdir().unwrap();
        // Process ids are below 2^22 on Linux, so this one cannot be running.
        let stale = base.path().join("cutover-import-4999999");
        fs::create_dir(&stale).unwrap();
        let _dir = WorkDir::create(base.path()).unwrap();
        if Path::new("/proc/self").exists() {
            assert!(!stale.exists());
        }
    }
}
