//! The Clerk dashboard CSV export, read one row at a time.
//!
//! Columns are found by header name (Clerk's 13 known columns; extra ones such
//! as a trailing `created_at` are tolerated, and `created_at` is used when
//! present). Quoting is RFC 4180 (the `csv` crate). Multi-valued cells are split
//! on `|`, `,` or `;`. Every value is checked and normalized here, so each bad
//! cell is reported with its line and column; a row with any bad cell is
//! reported whole and left out. So is a row whose number of fields differs from
//! the header's: its values cannot be trusted to sit under the right columns (a
//! row cut short would otherwise import as a user with no digest, forced to
//! reset without anyone being told).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::issue::{Entity, Issue, Location};
use super::normalize;
use super::records::CsvUser;
use super::sensitive::Sensitive;
use super::{ImportError, hashers};

/// Clerk's 13 columns, in export order.
pub const KNOWN_COLUMNS: [&str; 13] = [
    "id",
    "first_name",
    "last_name",
    "username",
    "primary_email_address",
    "primary_phone_number",
    "verified_email_addresses",
    "unverified_email_addresses",
    "verified_phone_numbers",
    "unverified_phone_numbers",
    "totp_secret",
    "password_digest",
    "password_hasher",
];

/// The extra column some exports carry.
const CREATED_AT: &str = "created_at";

/// A row: a checked user, or the problems that kept it out (with its id when
/// the id itself was readable).
#[derive(Debug)]
pub enum CsvRow {
    User(Box<CsvUser>),
    Bad {
        id: Option<String>,
        issues: Vec<Issue>,
    },
}

/// A CSV export being read.
pub struct CsvExport {
    name: String,
    reader: csv::Reader<BufReader<File>>,
    /// Index of each known column (and `created_at`) in the header, if present.
    index: [Option<usize>; 14],
    /// Known columns absent from the header.
    pub missing_columns: Vec<&'static str>,
    /// Fields in the header: every row must have exactly as many.
    columns: usize,
    record: csv::ByteRecord,
}

impl CsvExport {
    /// Open `path` and read its header. `name` labels it in messages.
    pub fn open(path: &Path, name: &str) -> Result<CsvExport, ImportError> {
        let file = File::open(path).map_err(|e| ImportError::io(path, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(BufReader::with_capacity(1 << 16, file));
        let header = reader
            .byte_headers()
            .map_err(|e| ImportError::Input(format!("{name}:1: cannot read the CSV header: {e}")))?
            .clone();
        let mut index = [None; 14];
        for (i, raw) in header.iter().enumerate() {
            let text = String::from_utf8_lossy(raw);
            let col = text
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            let slot = KNOWN_COLUMNS
                .iter()
                .position(|k| *k == col)
                .or_else(|| (col == CREATED_AT).then_some(13));
            if let Some(slot) = slot {
                if index[slot].is_some() {
                    return Err(ImportError::Input(format!(
                        "{name}:1: column {col} appears twice in the header"
                    )));
                }
                index[slot] = Some(i);
            }
        }
        if index[0].is_none() {
            return Err(ImportError::Input(format!(
                "{name}:1: no `id` column in the header: is this a Clerk user export?"
            )));
        }
        let missing_columns = KNOWN_COLUMNS
            .iter()
            .enumerate()
            .filter(|(i, _)| index[*i].is_none())
            .map(|(_, c)| *c)
            .collect();
        Ok(CsvExport {
            name: name.to_string(),
            reader,
            index,
            missing_columns,
            columns: header.len(),
            record: csv::ByteRecord::new(),
        })
    }

    /// The next row, `None` at the end. A syntax error the parser cannot get
    /// past ends the file with an error.
    pub fn next_row(&mut self) -> Option<Result<CsvRow, ImportError>> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => Some(Ok(self.row())),
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                Some(Err(ImportError::Input(format!(
                    "{}:{line}: unreadable CSV: {e}",
                    self.name
                ))))
            }
        }
    }

    fn row(&self) -> CsvRow {
        let line = self.record.position().map(|p| p.line()).unwrap_or(0);
        let mut cells = Cells {
            export: self,
            line,
            issues: Vec::new(),
            id: None,
        };
        let id = cells.text(0).map(str::to_string);
        match id.as_deref() {
            None => cells.bad(0, "the id is empty".into()),
            Some(id) if id.len() > normalize::MAX_TEXT || id.chars().any(char::is_whitespace) => {
                cells.bad(0, "the id is not a Clerk user id".into())
            }
            Some(_) => cells.id = id.clone(),
        }
        if self.record.len() != self.columns {
            let issue = Issue::invalid(
                Entity::User,
                cells.id.as_deref(),
                Location::csv(&self.name, line),
                format!(
                    "the row has {} fields but the header has {}: left out, since its values may sit under the wrong columns",
                    self.record.len(),
                    self.columns
                ),
            );
            return CsvRow::Bad {
                id: cells.id,
                issues: vec![issue],
            };
        }
        let user = CsvUser {
            id: id.clone().unwrap_or_default(),
            first_name: cells.text(1).map(str::to_string),
            last_name: cells.text(2).map(str::to_string),
            username: cells.text(3).map(str::to_string),
            primary_email: cells.one(4, normalize::email),
            primary_phone: cells.one(5, normalize::phone),
            verified_emails: cells.many(6, normalize::email),
            unverified_emails: cells.many(7, normalize::email),
            verified_phones: cells.many(8, normalize::phone),
            unverified_phones: cells.many(9, normalize::phone),
            totp_secret: cells.one(10, normalize::totp_secret).map(Sensitive::new),
            digest: cells.text(11).map(Sensitive::new),
            hasher: cells.text(12).map(hashers::normalize),
            created_at: cells.one(13, normalize::rfc3339),
            line,
        };
        if user.digest.is_some() && user.hasher.is_none() {
            cells.bad(
                12,
                "password_digest is set but password_hasher is empty".into(),
            );
        }
        if user
            .digest
            .as_ref()
            .is_some_and(|d| d.expose().len() > 4096)
        {
            cells.bad(11, "password_digest is longer than 4096 bytes".into());
        }
        if cells.issues.is_empty() {
            CsvRow::User(Box::new(user))
        } else {
            CsvRow::Bad {
                id,
                issues: cells.issues,
            }
        }
    }
}

/// The cells of the current row, with the problems found so far.
struct Cells<'a> {
    export: &'a CsvExport,
    line: u64,
    issues: Vec<Issue>,
    id: Option<String>,
}

impl Cells<'_> {
    fn name(slot: usize) -> &'static str {
        KNOWN_COLUMNS.get(slot).copied().unwrap_or(CREATED_AT)
    }

    fn bad(&mut self, slot: usize, message: String) {
        let at = match self.export.index[slot] {
            Some(i) => Location::csv_cell(&self.export.name, self.line, i, Cells::name(slot)),
            None => Location::csv(&self.export.name, self.line),
        };
        self.issues.push(Issue::invalid(
            Entity::User,
            self.id.as_deref(),
            at,
            message,
        ));
    }

    /// A trimmed, non-empty cell, or `None`. Invalid UTF-8 is reported.
    fn text(&mut self, slot: usize) -> Option<&str> {
        let raw = self.export.record.get(self.export.index[slot]?)?;
        match std::str::from_utf8(raw) {
            Ok(s) => normalize::non_empty(Some(s)),
            Err(_) => {
                self.bad(slot, "the cell is not valid UTF-8".into());
                None
            }
        }
    }

    fn one<T>(&mut self, slot: usize, check: fn(&str) -> Result<T, String>) -> Option<T> {
        let raw = self.text(slot)?.to_string();
        match check(&raw) {
            Ok(v) => Some(v),
            Err(message) => {
                self.bad(slot, message);
                None
            }
        }
    }

    fn many(&mut self, slot: usize, check: fn(&str) -> Result<String, String>) -> Vec<String> {
        let Some(raw) = self.text(slot).map(str::to_string) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for part in normalize::split_multi(&raw) {
            match check(part) {
                Ok(v) if !out.contains(&v) => out.push(v),
                Ok(_) => {}
                Err(message) => self.bad(slot, message),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
